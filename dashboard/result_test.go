package dashboard

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestMessageAPIResult: the message view shows the result a handler gave
// with the message's success, decoded as content is, also once the
// message left the queue; a message without one shows none.
func TestMessageAPIResult(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range []string{"r", "plain"} {
		if _, err := c.Enqueue(ctx, "q", id, &mq.EnqueueOptions{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.StartWorker(ctx, "q", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if m.ID == "r" {
				return m.SetResult(map[string]any{"total": 7})
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	for _, id := range []string{"r", "plain"} {
		if _, err := c.WaitResult(ctx, "q", id); err != nil && id == "r" {
			t.Fatal(err)
		}
	}
	srv := serve(t, c, Options{})
	code, body := get(t, srv, "/mq/api/message?queue=q&id=r")
	m := decodeJSON[oneMessageJSON](t, body)
	if code != http.StatusNotFound || m.Result == nil || !strings.Contains(m.Result.Content, `"total": 7`) || m.Result.AtMS == 0 {
		t.Errorf("r: %d %s", code, body)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=plain")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusNotFound || m.Result != nil {
		t.Errorf("plain: %d %s", code, body)
	}
}

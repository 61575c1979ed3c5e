package dashboard

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestCancelAction: api/cancel deletes a queued message and tells a
// running one's worker; api/message shows a running message's progress
// and the cancel asked; an id the queue does not hold answers 404.
func TestCancelAction(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	srv := serve(t, c, Options{AllowActions: true})
	ctx := context.Background()
	for _, id := range []string{"queued", "running"} {
		if _, err := c.Enqueue(ctx, "q", id, &mq.EnqueueOptions{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	code, resp := post(t, srv, "/mq/api/cancel", `{"queue":"q","id":"queued"}`, nil)
	if code != http.StatusOK || !decodeJSON[actionResult](t, resp).Changed {
		t.Fatalf("cancel of a queued message: %d %s", code, resp)
	}
	if code, resp = post(t, srv, "/mq/api/cancel", `{"queue":"q","id":"queued"}`, nil); code != http.StatusNotFound {
		t.Fatalf("cancel of an id not in the queue: %d %s", code, resp)
	}

	reported, release := make(chan struct{}), make(chan struct{})
	w, err := c.StartWorker(ctx, "q", &mq.WorkerConfig{LockTime: time.Minute,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if err := m.ProgressNow(ctx, 3, "of 10"); err != nil {
				return err
			}
			close(reported)
			<-release // ignores its context: the cancel stays to be seen
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	<-reported
	code, resp = post(t, srv, "/mq/api/cancel", `{"queue":"q","id":"running"}`, nil)
	if code != http.StatusOK || !decodeJSON[actionResult](t, resp).Changed {
		t.Fatalf("cancel of a running message: %d %s", code, resp)
	}
	code, resp = get(t, srv, "/mq/api/message?queue=q&id=running")
	m := decodeJSON[oneMessageJSON](t, resp)
	if code != http.StatusOK || m.Progress == nil || m.Progress.N != 3 || m.Progress.Note != "of 10" || m.CancelRequestedMS == 0 {
		t.Fatalf("api/message: %d %s", code, resp)
	}
	close(release)
}

package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
)

// TestMessageAttemptErrors: api/message answers the errors of a live
// message's failed attempts, before it is a dead letter (only api/dead
// showed them).
func TestMessageAttemptErrors(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	w, err := c.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
			return fmt.Errorf("failure %d", m.Attempt)
		}),
		MaxAttempts: 5,
		RetryBackoff: func(attempt int) time.Duration {
			if attempt >= 2 {
				return time.Hour // it waits, in the queue, after two
			}
			return time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := c.Enqueue(ctx, "jobs", "x", &mq.EnqueueOptions{MessageID: "j"}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})
	var m oneMessageJSON
	queuetest.WaitFor(t, "two attempts failed", func() bool {
		code, body := get(t, srv, "/mq/api/message?queue=jobs&id=j")
		m = decodeJSON[oneMessageJSON](t, body)
		return code == http.StatusOK && m.Attempts == 2 && m.Status == mq.StatusQueuedWithBackoff.String()
	})
	if len(m.AttemptErrors) != 2 || m.AttemptErrors[0].Attempt != 1 || m.AttemptErrors[1].Error != "failure 2" || m.AttemptErrors[0].AtMS == 0 {
		t.Fatalf("attempt errors: %+v", m.AttemptErrors)
	}
}

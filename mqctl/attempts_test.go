package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestMessageAttemptErrors: mqctl message shows the errors of a live
// message's failed attempts, before it is a dead letter (only dead show
// showed them).
func TestMessageAttemptErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	w, err := f.client.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
			return fmt.Errorf("smtp \u202e%d", m.Attempt)
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
	f.enqueue(t, "jobs", "j", 1)
	var v messageView
	waitUntil(t, "two attempts failed", func() bool {
		decode(t, f.env.ok(t, "", "message", "jobs", "j", "--json"), &v)
		return v.Attempts == 2 && v.Status == mq.StatusQueuedWithBackoff.String()
	})
	if len(v.AttemptErrors) != 2 || v.AttemptErrors[0].Attempt != 1 || v.AttemptErrors[1].Error != "smtp \u202e2" {
		t.Fatalf("--json: %+v", v.AttemptErrors)
	}
	r := f.env.ok(t, "", "message", "jobs", "j")
	if !strings.Contains(r.stdout, "attempt 1") || !strings.Contains(r.stdout, `smtp \u202e2`) || strings.Contains(r.stdout, "\u202e") {
		t.Errorf("message:\n%s", r.stdout)
	}
}

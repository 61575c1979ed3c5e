package dashboard

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
)

// TestHistoryAPIWorkers: api/history answers the handlings real workers recorded in
// Redis, processed and failed, in the current minute of a dense run, and
// refuses bad input.
func TestHistoryAPIWorkers(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	for _, id := range []string{"ok-0", "ok-1", "ok-2", "bad-0"} {
		if _, err := c.Enqueue(ctx, "jobs", id, &mq.EnqueueOptions{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if m.ID == "bad-0" {
				return mq.Final(errors.New("no"))
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, "4 handlings", func() bool {
		n, err := c.Inspector().QueueCounts(ctx, "jobs")
		return err == nil && n.Total == 0 && n.Dead == 1
	})
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})

	status, body := get(t, srv, "/mq/api/history?queue=jobs&minutes=5")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	got := decodeJSON[outcomesJSON](t, body)
	if len(got.Minutes) < 5 || len(got.Minutes) > 6 { // 6 when a minute turned meanwhile
		t.Fatalf("%d minutes, want 5: %s", len(got.Minutes), body)
	}
	var sum outcomeMinuteJSON
	for i, m := range got.Minutes {
		if i > 0 && m.StartMS-got.Minutes[i-1].StartMS != time.Minute.Milliseconds() {
			t.Errorf("minute %d starts %d ms after the one before", i, m.StartMS-got.Minutes[i-1].StartMS)
		}
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	if sum != (outcomeMinuteJSON{Processed: 4, Failed: 1, Dead: 1}) {
		t.Errorf("the minutes add up to %+v, want 4 processed, 1 failed, 1 dead", sum)
	}

	for _, q := range []string{"queue=jobs&minutes=0", "queue=jobs&minutes=x", "queue="} {
		if status, body := get(t, srv, "/mq/api/history?"+q); status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, status, body)
		}
	}
}

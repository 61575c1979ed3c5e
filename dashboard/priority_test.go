package dashboard

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
)

// TestReadyByPriority: a queue's counts tell how many ready messages are
// high and low.
func TestReadyByPriority(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	for i, p := range []mq.Priority{mq.PriorityHigh, mq.PriorityLow, mq.PriorityLow, mq.PriorityNormal} {
		if _, err := c.Enqueue(ctx, "jobs", i, &mq.EnqueueOptions{Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, c, Options{})
	q := findQueue(t, overviewOf(t, srv), "jobs")
	if q.Counts == nil || q.Counts.ReadyHigh != 1 || q.Counts.ReadyLow != 2 || q.Counts.Queued != 4 {
		t.Fatalf("counts %+v, want 4 queued, 1 high and 2 low", q.Counts)
	}
}

// TestWorkersMultiQueue: a multi-queue worker's entry tells its queues
// and its order.
func TestWorkersMultiQueue(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	w, err := c.NewMultiWorker(mq.Strict{"urgent", "default"},
		&mq.WorkerConfig{Handler: mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv := serve(t, c, Options{})
	var got workersJSON
	queuetest.WaitFor(t, "the worker's heartbeat", func() bool {
		code, body := get(t, srv, "/mq/api/workers?queue=default")
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		got = decodeJSON[workersJSON](t, body)
		return len(got.Workers) == 1
	})
	want := []mq.QueueWeight{{Queue: "urgent", Weight: 1}, {Queue: "default", Weight: 1}}
	if k := got.Workers[0]; !slices.Equal(k.Queues, want) || !k.Strict || k.Queue != "default" {
		t.Errorf("worker %+v, want queues %v, strict", k, want)
	}
}

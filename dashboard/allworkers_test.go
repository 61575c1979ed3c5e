package dashboard

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
)

// TestAllWorkers: api/workers without a queue answers the live workers of
// every queue, each with its queue (there was no view of all workers);
// an empty queue is still refused as a bad name.
func TestAllWorkers(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	idle := mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })
	for _, q := range []string{"emails", "sms", "sms"} {
		w, err := c.StartWorker(ctx, q, &mq.WorkerConfig{Handler: idle})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
	}
	srv := serve(t, c, Options{})
	var got workersJSON
	queuetest.WaitFor(t, "three workers", func() bool {
		code, body := get(t, srv, "/mq/api/workers")
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		got = decodeJSON[workersJSON](t, body)
		return len(got.Workers) == 3
	})
	var queues []string
	for _, k := range got.Workers {
		queues = append(queues, k.Queue)
	}
	if got.Queue != "" || !slices.Equal(queues, []string{"emails", "sms", "sms"}) {
		t.Errorf("all workers: queue %q, workers' queues %v", got.Queue, queues)
	}
	code, body := get(t, srv, "/mq/api/workers?queue=sms")
	if got := decodeJSON[workersJSON](t, body); code != http.StatusOK || len(got.Workers) != 2 || got.Workers[0].Queue != "sms" {
		t.Errorf("workers of sms: %d %s", code, body)
	}
	if code, body := get(t, srv, "/mq/api/workers?queue="); code != http.StatusBadRequest {
		t.Errorf("empty queue: %d %s", code, body)
	}
}

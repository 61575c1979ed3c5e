package mq_test

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq"
)

// A backlog of low-priority work does not hold up an urgent message: the
// worker takes high messages first, then normal ones, then low ones.
func ExampleEnqueueOptions_priority() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	for _, m := range []struct {
		id string
		p  mq.Priority
	}{{"report-1", mq.PriorityLow}, {"report-2", mq.PriorityLow}, {"email", mq.PriorityNormal}, {"password-reset", mq.PriorityHigh}} {
		if _, err := client.Enqueue(ctx, "jobs", m.id, &mq.EnqueueOptions{MessageID: m.id, Priority: m.p}); err != nil {
			panic(err)
		}
	}
	handled := make(chan string, 4)
	worker, err := client.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			handled <- fmt.Sprintf("%s (%s)", m.ID, m.Priority)
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	for range 4 {
		fmt.Println(<-handled)
	}
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// password-reset (high)
	// email (normal)
	// report-1 (low)
	// report-2 (low)
}

package mq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq"
)

// A queue's history per minute, as its workers recorded it in Redis, and
// a dead letter's errors by attempt.
func ExampleInspector_History() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	for _, id := range []string{"a", "b", "bad"} {
		if _, err := client.Enqueue(ctx, "jobs", id, &mq.EnqueueOptions{MessageID: id}); err != nil {
			panic(err)
		}
	}
	ended := make(chan struct{}, 3)
	worker, err := client.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
			defer func() { ended <- struct{}{} }()
			if m.ID == "bad" {
				return mq.Final(errors.New("no such account"))
			}
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	for range 3 {
		<-ended
	}
	if err := worker.Stop(ctx); err != nil { // records the outcomes first
		panic(err)
	}

	minutes, err := client.Inspector().History(ctx, "jobs", time.Now().Add(-time.Hour))
	if err != nil {
		panic(err)
	}
	var sum mq.HistoryMinute
	for _, m := range minutes {
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	fmt.Printf("last hour: %d processed, %d failed, %d dead\n", sum.Processed, sum.Failed, sum.Dead)

	d, err := client.Inspector().DeadLetter(ctx, "jobs", "bad")
	if err != nil {
		panic(err)
	}
	for _, e := range d.AttemptErrors {
		fmt.Printf("attempt %d: %s\n", e.Attempt, e.Error)
	}
	// Output:
	// last hour: 3 processed, 1 failed, 1 dead
	// attempt 1: no such account
}

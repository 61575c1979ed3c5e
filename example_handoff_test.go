package mq_test

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq"
)

// A handler hands its work on with its success: the follow-up is recorded
// with the outcome and enqueued exactly once.
func ExampleThen() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	if _, err := client.Enqueue(ctx, "uploads", "cat.png", &mq.EnqueueOptions{MessageID: "u1"}); err != nil {
		panic(err)
	}
	resized := make(chan string)
	uploads, err := client.StartWorker(ctx, "uploads", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var name string
			if err := m.Decode(&name); err != nil {
				return err
			}
			// success, and resize it next
			return mq.Then(mq.FollowUp{Queue: "resize", Message: name})
		}),
	})
	if err != nil {
		panic(err)
	}
	resize, err := client.StartWorker(ctx, "resize", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var name string
			if err := m.Decode(&name); err != nil {
				return err
			}
			resized <- name
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("resized:", <-resized)
	_ = uploads.Stop(ctx)
	_ = resize.Stop(ctx)
	// Output: resized: cat.png
}

// A batch's completion message comes once every member has finished, with
// their counts.
func ExampleClient_EnqueueBatch() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	var members []mq.BatchMessage
	for _, page := range []string{"a", "b", "c"} {
		members = append(members, mq.BatchMessage{Queue: "pages", Message: page})
	}
	batch, _, err := client.EnqueueBatch(ctx, members, mq.BatchMessage{Queue: "reports", Message: "all pages"})
	if err != nil {
		panic(err)
	}
	finished := make(chan mq.BatchCounts)
	pages, err := client.StartWorker(ctx, "pages", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error { return nil }),
	})
	if err != nil {
		panic(err)
	}
	reports, err := client.StartWorker(ctx, "reports", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			counts, _ := m.BatchCounts()
			finished <- counts
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	counts := <-finished
	fmt.Println("same batch:", counts.Batch == batch)
	fmt.Println("succeeded:", counts.Succeeded, "dead:", counts.Dead)
	info, _ := client.Inspector().Batch(ctx, "reports", batch)
	fmt.Println("members finished:", info.Finished(), "of", info.Members)
	_ = pages.Stop(ctx)
	_ = reports.Stop(ctx)
	// Output:
	// same batch: true
	// succeeded: 3 dead: 0
	// members finished: 3 of 3
}

package mq_test

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq"
)

// One worker serves two queues in strict order: the password resets are
// all handled before the first newsletter, with one pool of handlers for
// both; mq.Weighted would share the handlers by weight instead.
func ExampleClient_NewMultiWorker() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	for i := range 2 {
		if _, err := client.Enqueue(ctx, "newsletters", fmt.Sprint("newsletter-", i), nil); err != nil {
			panic(err)
		}
		if _, err := client.Enqueue(ctx, "resets", fmt.Sprint("reset-", i), nil); err != nil {
			panic(err)
		}
	}
	handled := make(chan string, 4)
	worker, err := client.NewMultiWorker(mq.Strict{"resets", "newsletters"}, &mq.WorkerConfig{
		HandlerThreads: 1,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var v string
			if err := m.Decode(&v); err != nil {
				return err
			}
			handled <- m.Queue + ": " + v
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	if err := worker.Start(ctx); err != nil {
		panic(err)
	}
	for range 4 {
		fmt.Println(<-handled)
	}
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// resets: reset-0
	// resets: reset-1
	// newsletters: newsletter-0
	// newsletters: newsletter-1
}

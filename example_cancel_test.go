package mq_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocarmine/mq"
)

// A long export is cancelled while it runs, from any process: its
// handler's context ends with the cause ErrCancelled, and its outcome is
// recorded as cancelled, whatever it answers. A queued message is simply
// removed. The handler reports its progress as it goes.
func ExampleClient_Cancel() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	running := make(chan struct{})
	ended := make(chan error, 1)
	worker, err := client.StartWorker(ctx, "exports", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			m.Progress(10, "10 of 100 rows") // stored with the next lock renewal
			close(running)
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return ctx.Err()
		}),
	})
	if err != nil {
		panic(err)
	}
	events, stop := worker.Subscribe(mq.EventHandled)
	defer stop()
	if _, err := client.Enqueue(ctx, "exports", "all rows", &mq.EnqueueOptions{MessageID: "export-1"}); err != nil {
		panic(err)
	}
	<-running
	r, err := client.Cancel(ctx, "exports", "export-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("cancel:", r)
	fmt.Println("handler's context ended by a cancel:", errors.Is(<-ended, mq.ErrCancelled))
	fmt.Println("outcome:", (<-events).Outcome)

	if _, err := client.Enqueue(ctx, "exports", "later", &mq.EnqueueOptions{MessageID: "export-2", InitialBackoff: 1 << 40}); err != nil {
		panic(err)
	}
	r, err = client.Cancel(ctx, "exports", "export-2")
	if err != nil {
		panic(err)
	}
	fmt.Println("cancel of a queued one:", r)
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// cancel: signalled
	// handler's context ended by a cancel: true
	// outcome: cancelled
	// cancel of a queued one: removed
}

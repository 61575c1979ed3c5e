package mq_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gocarmine/mq"
)

// Request and reply over a queue: the handler answers each message with a
// result, and the caller enqueues, then waits for it (from any process).
func ExampleClient_WaitResult() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	defer client.Close() // ends the subscription the waits share

	worker, err := client.StartWorker(ctx, "shout", &mq.WorkerConfig{
		Handler: mq.HandleTypedResult(func(ctx context.Context, m *mq.Message, s string) (string, error) {
			return strings.ToUpper(s), nil
		}),
		ResultMaxAge: time.Hour, // how long a result is kept for a late reader
	})
	if err != nil {
		panic(err)
	}
	defer worker.Stop(ctx)

	res, err := client.Enqueue(ctx, "shout", "hello", nil)
	if err != nil {
		panic(err)
	}
	result, err := client.WaitResult(ctx, "shout", res.MessageID)
	if err != nil {
		panic(err)
	}
	var reply string
	if err := result.Decode(&reply); err != nil {
		panic(err)
	}
	fmt.Println(reply)
	// Output:
	// HELLO
}

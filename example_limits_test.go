package mq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq"
)

// Limits bind every worker of a queue, in every process: here at most 100
// hand-outs a second (a burst of 10 more after a quiet time), at most 5 of
// one customer's messages handled at once, and at most 20 in all.
func ExampleInspector_SetLimits() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	err = client.Inspector().SetLimits(ctx, "emails", mq.Limits{
		Rate:           mq.Rate{N: 100, Per: time.Second, Burst: 10},
		Concurrency:    20,
		KeyConcurrency: 5,
	})
	if err != nil {
		panic(err)
	}
	// The producer names the key each message counts under.
	if _, err := client.Enqueue(ctx, "emails", "welcome", &mq.EnqueueOptions{LimitKey: "customer-42"}); err != nil {
		panic(err)
	}
	st, err := client.Inspector().Limits(ctx, "emails")
	if err != nil {
		panic(err)
	}
	fmt.Println("rate:", st.Limits.Rate)
	fmt.Println("per key at once:", st.Limits.KeyConcurrency)

	// A limit out of range is refused before anything is written.
	err = client.Inspector().SetLimits(ctx, "emails", mq.Limits{Rate: mq.Rate{N: 100}})
	fmt.Println(errors.Is(err, mq.ErrInvalidOption))
	// Output:
	// rate: 100/1s+10
	// per key at once: 5
	// true
}

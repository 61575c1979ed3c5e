package mq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq"
)

// A producer that names its message and gives it a dedupe window may send
// the enqueue again after any error: a resend finds the message queued,
// being handled, or handled within the window, and is refused as a
// duplicate. The message's own policy bounds its attempts and each
// handling.
func ExampleEnqueueOptions_uniqueFor() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	opts := &mq.EnqueueOptions{
		MessageID:   "invoice-2026-0042",
		UniqueFor:   time.Hour,
		MaxAttempts: 3,
		Backoff:     &mq.RetryBackoff{Kind: mq.BackoffExponential, Base: time.Second, Max: time.Minute},
		Timeout:     30 * time.Second,
	}
	for range 2 { // the second as if the first's reply had been lost
		res, err := client.Enqueue(ctx, "invoices", "send invoice 42", opts)
		if err != nil {
			panic(err)
		}
		var dup *mq.DuplicateError
		if errors.As(res.Refused, &dup) {
			fmt.Println("duplicate, met:", dup.Met)
		} else {
			fmt.Println(res.Action)
		}
	}
	info, err := client.Inspector().Message(ctx, "invoices", "invoice-2026-0042")
	if err != nil {
		panic(err)
	}
	fmt.Println("policy:", info.Policy)
	// Output:
	// added
	// duplicate, met: queued
	// policy: max attempts 3, backoff exp 1s..1m0s, timeout 30s, unique for 1h0m0s
}

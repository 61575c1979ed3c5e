// Command dedupe shows per-message dedupe and retry.
//
//	go run ./examples/dedupe
//
// A "send invoice" message is enqueued under a stable id. While it waits, is
// handled, or sits in its one-hour dedupe window after success, enqueues of
// the same id are refused, so the invoice goes out once. The handler fails
// on its first attempt and asks for a retry, which comes with attempt 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/exampleredis"
)

func main() {
	exampleredis.Main("examples:invoices", slog.LevelWarn, run)
}

func run(ctx context.Context, client *mq.Client, queue string) error {
	opts := &mq.EnqueueOptions{MessageID: "invoice-1001"}
	enqueue := func(when string) error {
		res, err := client.Enqueue(ctx, queue, "send invoice 1001", opts)
		if err != nil {
			return err
		}
		switch {
		case res.OK():
			fmt.Printf("%s: enqueue %s\n", when, res.Action)
		case errors.Is(res.Refused, mq.ErrAlreadyQueued), errors.Is(res.Refused, mq.ErrLocked),
			errors.Is(res.Refused, mq.ErrBackoff):
			fmt.Printf("%s: enqueue refused (%v)\n", when, res.Refused)
		}
		return nil
	}
	if err := enqueue("first"); err != nil {
		return err
	}
	if err := enqueue("while queued"); err != nil {
		return err
	}

	done := make(chan struct{})
	worker, err := client.NewWorker(queue, &mq.WorkerConfig{
		EndOfQueueBackoff: mq.Constant(50 * time.Millisecond),
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if m.Attempt == 1 {
				fmt.Printf("attempt %d: the mail server is down, retry in 100ms\n", m.Attempt)
				return mq.Retry(100 * time.Millisecond)
			}
			fmt.Printf("attempt %d: invoice sent; keep the id for an hour\n", m.Attempt)
			defer close(done)
			return mq.SucceedWithBackoff(time.Hour)
		}),
	})
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("timed out")
	}
	if err := worker.Stop(ctx); err != nil {
		return err
	}
	status, err := client.MessageStatus(ctx, queue, "invoice-1001")
	if err != nil {
		return err
	}
	fmt.Println("status:", status)
	if err := enqueue("after sending"); err != nil {
		return err
	}
	st := worker.Stats().Counts
	fmt.Printf("counts: success=%d retry=%d backoff=%d\n", st[mq.CountSuccess], st[mq.CountRetry], st[mq.CountBackoff])
	return nil
}

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
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx, "examples:invoices", slog.LevelWarn); err != nil {
		log.Fatal(err)
	}
}

// mainErr connects to REDIS_URL, or to an embedded miniredis when it is
// unset, and runs the example on queue, emptied before and after.
func mainErr(ctx context.Context, queue string, level slog.Level) error {
	var rdb *redis.Client
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		fmt.Println("Redis:", opts.Addr)
	} else {
		m, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer m.Close()
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		fmt.Println("Redis: embedded miniredis (set REDIS_URL to use a real Redis)")
	}
	defer rdb.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	client, err := mq.New(rdb, &mq.Config{Logger: logger})
	if err != nil {
		return err
	}
	if _, err := client.Inspector().ClearQueues(ctx, queue); err != nil {
		return err
	}
	if err := run(ctx, client, queue); err != nil {
		return err
	}
	_, err = client.Inspector().ClearQueues(ctx, queue)
	return err
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
	worker, err := client.StartWorker(ctx, queue, &mq.WorkerConfig{
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
	status, err := client.Inspector().MessageStatus(ctx, queue, "invoice-1001")
	if err != nil {
		return err
	}
	fmt.Println("status:", status)
	if err := enqueue("after sending"); err != nil {
		return err
	}
	st := worker.Stats().Counts
	fmt.Printf("counts: success=%d retry=%d backoff=%d\n", st.Succeeded, st.Retried, st.BackoffsSet)
	return nil
}

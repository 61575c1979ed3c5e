// Command basic enqueues a few messages and handles them with a worker.
//
//	go run ./examples/basic
//
// With REDIS_URL unset it runs on an embedded Redis (miniredis), so it needs
// nothing installed; with REDIS_URL=redis://host:port/db it uses that Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// Email is the message this example sends through the queue.
type Email struct {
	To   string
	Body string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx, "examples:basic", slog.LevelWarn); err != nil {
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

	// Enqueue three messages; the second id is enqueued twice, and the
	// queue refuses the duplicate.
	emails := []Email{{"ada@example.com", "hello"}, {"bob@example.com", "hi"}, {"cy@example.com", "hey"}}
	for i, e := range emails {
		res, err := client.Enqueue(ctx, queue, e, &mq.EnqueueOptions{MessageID: fmt.Sprintf("email-%d", i+1)})
		if err != nil {
			return err
		}
		fmt.Printf("enqueue %s: %s\n", res.MessageID, res.Action)
	}
	res, err := client.Enqueue(ctx, queue, emails[1], &mq.EnqueueOptions{MessageID: "email-2"})
	if err != nil {
		return err
	}
	fmt.Printf("enqueue email-2 again: refused=%v (ErrAlreadyQueued: %v)\n", res.Refused, errors.Is(res.Refused, mq.ErrAlreadyQueued))

	status, err := client.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		return err
	}
	fmt.Printf("queue: %d queued, %d total\n", status.Queued, status.Total)

	// A worker with two handler threads handles them.
	var wg sync.WaitGroup
	wg.Add(len(emails))
	var mu sync.Mutex
	worker, err := client.StartWorker(ctx, queue, &mq.WorkerConfig{
		HandlerThreads: 2,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			defer wg.Done()
			var e Email
			if err := m.Decode(&e); err != nil {
				return err
			}
			mu.Lock()
			fmt.Printf("handled %s (attempt %d): to=%s body=%q\n", m.ID, m.Attempt, e.To, e.Body)
			mu.Unlock()
			return nil
		}),
	})
	if err != nil {
		return err
	}
	handled := make(chan struct{})
	go func() { wg.Wait(); close(handled) }()
	select {
	case <-handled:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		return errors.New("timed out waiting for the worker")
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := worker.Stop(stopCtx); err != nil {
		return err
	}
	st := worker.Stats()
	fmt.Printf("worker: %d succeeded, %d failed\n", st.Counts.Succeeded, st.Counts.Failed)
	for _, id := range []string{"email-1", "email-2", "email-3"} {
		s, err := client.Inspector().MessageStatus(ctx, queue, id)
		if err != nil {
			return err
		}
		fmt.Printf("status %s: %s\n", id, s)
	}
	return nil
}

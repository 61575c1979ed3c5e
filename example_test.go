package mq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// newRedis returns a client of an embedded Redis, for the examples.
func newRedis() (*redis.Client, func()) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	return rdb, func() { rdb.Close(); m.Close() }
}

// The quick start of the README: enqueue a message and handle it.
func Example() {
	ctx := context.Background()
	rdb, done := newRedis() // or redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer done()

	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	res, err := client.Enqueue(ctx, "emails", map[string]string{"to": "ada@example.com"},
		&mq.EnqueueOptions{MessageID: "welcome-ada"})
	if err != nil {
		panic(err)
	}
	fmt.Println("enqueued:", res.MessageID, res.Action)

	handled := make(chan string)
	worker, err := client.StartWorker(ctx, "emails", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var email map[string]string
			if err := m.Decode(&email); err != nil {
				return err // a failure: retried later, a dead letter after the last attempt
			}
			handled <- fmt.Sprintf("%s to %s, attempt %d", m.ID, email["to"], m.Attempt)
			return nil // success
		}),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("handled:", <-handled)
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	status, _ := client.Inspector().MessageStatus(ctx, "emails", "welcome-ada")
	fmt.Println("status:", status)
	// Output:
	// enqueued: welcome-ada added
	// handled: welcome-ada to ada@example.com, attempt 1
	// status: nil
}

// A refusal is an answer, not an error: test it with errors.Is.
func ExampleClient_Enqueue() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)

	opts := &mq.EnqueueOptions{MessageID: "report-42"}
	first, _ := client.Enqueue(ctx, "reports", "build report 42", opts)
	again, _ := client.Enqueue(ctx, "reports", "build report 42", opts)
	fmt.Println(first.Action, first.OK())
	fmt.Println(again.OK(), errors.Is(again.Refused, mq.ErrAlreadyQueued))

	// CanUpdate replaces the content of a message still waiting.
	opts.CanUpdate = true
	upd, _ := client.Enqueue(ctx, "reports", "build report 42, v2", opts)
	fmt.Println(upd.Action)
	// Output:
	// added true
	// false true
	// updated
}

// EnqueueMany sends many messages in one round trip; each gets its answer.
func ExampleClient_EnqueueMany() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)

	results, err := client.EnqueueMany(ctx, "thumbnails",
		mq.EnqueueRequest{Message: "a.png", Options: &mq.EnqueueOptions{MessageID: "a"}},
		mq.EnqueueRequest{Message: "b.png", Options: &mq.EnqueueOptions{MessageID: "b"}},
		mq.EnqueueRequest{Message: "a.png", Options: &mq.EnqueueOptions{MessageID: "a"}},
	)
	if err != nil {
		panic(err)
	}
	for _, r := range results {
		fmt.Println(r.MessageID, r.Action, r.Refused)
	}
	size, _ := client.Inspector().QueueSize(ctx, "thumbnails")
	fmt.Println("queue size:", size)
	// Output:
	// a added <nil>
	// b added <nil>
	// a  mq: already queued
	// queue size: 2
}

// A handler answers Retry to be called again later, with the next attempt
// number.
func ExampleRetry() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)
	_, _ = client.Enqueue(ctx, "flaky", "call the partner API", nil)

	attempts := make(chan int)
	worker, _ := client.StartWorker(ctx, "flaky", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			attempts <- m.Attempt
			if m.Attempt < 3 {
				return mq.Retry(0) // or Retry(time.Minute) to wait first
			}
			return nil
		}),
		EndOfQueueBackoff: mq.Constant(10 * time.Millisecond),
	})
	for range 3 {
		fmt.Println("attempt", <-attempts)
	}
	_ = worker.Stop(ctx)
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
}

// QueueContent lists every message, for debugging.
func ExampleInspector_QueueContent() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)
	_, _ = client.Enqueue(ctx, "jobs", "now", &mq.EnqueueOptions{MessageID: "j1"})
	_, _ = client.Enqueue(ctx, "jobs", "later", &mq.EnqueueOptions{MessageID: "j2", InitialBackoff: time.Hour})

	content, _ := client.Inspector().QueueContent(ctx, "jobs")
	for _, m := range content {
		fmt.Println(m.ID, m.Value, m.Status, m.Backoff > 50*time.Minute)
	}
	names, _ := client.Inspector().QueueNames(ctx, "*")
	fmt.Println(names)
	// Output:
	// j1 now queued false
	// j2 later queued-with-backoff true
	// [jobs]
}

// Message reads everything the queue holds of one message at once.
func ExampleInspector_Message() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)
	_, _ = client.Enqueue(ctx, "emails", map[string]any{"to": "ada@example.com"}, &mq.EnqueueOptions{
		MessageID: "welcome-ada", InitialBackoff: time.Hour, Metadata: map[string]string{"tenant": "t1"}})

	m, _ := client.Inspector().Message(ctx, "emails", "welcome-ada")
	fmt.Println(m.Status, m.Value, m.Metadata["tenant"], m.Backoff > 50*time.Minute, m.DeadLetter == nil)
	m, _ = client.Inspector().Message(ctx, "emails", "never-sent")
	fmt.Println(m.Status)
	// Output:
	// queued-with-backoff map[to:ada@example.com] t1 true true
	// nil
}

// A listing goes on page after page, each from the cursor of the one
// before, until a page answers the cursor "".
func ExampleInspector_QueueMessages() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, _ := mq.New(rdb, nil)
	for i := range 5 {
		_, _ = client.Enqueue(ctx, "jobs", i, nil)
	}

	seen, cursor := 0, ""
	for {
		page, err := client.Inspector().QueueMessages(ctx, "jobs", cursor, 2)
		if err != nil {
			panic(err)
		}
		seen += len(page.Items)
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	fmt.Println(seen, "messages")
	// Output: 5 messages
}

// Middleware tells a handler's answers from its failures with errors.As.
func ExampleAnswer() {
	err := fmt.Errorf("sent twice: %w", mq.SucceedWithBackoff(time.Hour))
	var a *mq.Answer
	if errors.As(err, &a) {
		fmt.Println(a.Kind, a.Backoff)
	}
	// Output: succeeded 1h0m0s
}

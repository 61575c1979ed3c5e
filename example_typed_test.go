package mq_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gocarmine/mq"
)

// Signup is the message type that the producer and the handler share.
type Signup struct {
	Email string
	Plan  string
}

// A typed producer and handler: the message is decoded into a Signup
// before the handler runs, and middleware (here a logging one) wraps it.
func ExampleHandleTyped() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}

	signups, err := mq.NewProducer[Signup](client, "signups")
	if err != nil {
		panic(err)
	}
	if _, err := signups.Enqueue(ctx, Signup{Email: "ada@example.com", Plan: "pro"}, nil); err != nil {
		panic(err)
	}

	logged := func(next mq.Handler) mq.Handler {
		return mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			err := next.Handle(ctx, m)
			if err != nil {
				log.Printf("message %s: %v", m.ID, err)
			}
			return err
		})
	}
	handled := make(chan string)
	worker, err := client.StartWorker(ctx, "signups", &mq.WorkerConfig{
		Handler: mq.HandleTyped(func(ctx context.Context, m *mq.Message, s Signup) error {
			handled <- s.Email + " on " + s.Plan
			return nil
		}),
		Middleware: []mq.Middleware{logged},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("handled:", <-handled)
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// handled: ada@example.com on pro
}

// Enqueue middleware that stamps every message with the tenant it was
// enqueued for, read by the handler from the message's metadata.
func ExampleEnqueueMiddleware() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	stamp := func(next mq.EnqueueFunc) mq.EnqueueFunc {
		return func(ctx context.Context, queue string, reqs []mq.EnqueueRequest) ([]mq.EnqueueResult, error) {
			out := make([]mq.EnqueueRequest, len(reqs))
			for i, r := range reqs {
				var o mq.EnqueueOptions // a copy: the caller's options are the caller's
				if r.Options != nil {
					o = *r.Options
				}
				o.Metadata = map[string]string{"tenant": "acme"}
				out[i] = mq.EnqueueRequest{Message: r.Message, Options: &o}
			}
			return next(ctx, queue, out)
		}
	}
	client, err := mq.New(rdb, &mq.Config{EnqueueMiddleware: []mq.EnqueueMiddleware{stamp}})
	if err != nil {
		panic(err)
	}
	if _, err := client.Enqueue(ctx, "reports", "weekly", nil); err != nil {
		panic(err)
	}
	handled := make(chan string)
	worker, err := client.StartWorker(ctx, "reports", &mq.WorkerConfig{
		Handler: mq.HandleTyped(func(ctx context.Context, m *mq.Message, report string) error {
			handled <- report + " for " + m.Metadata["tenant"]
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-handled)
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// weekly for acme
}

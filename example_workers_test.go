package mq_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// Every running worker, in any process, is listed by its heartbeat in
// Redis; a stopped one leaves the list at once.
func ExampleInspector_Workers() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	worker, err := client.StartWorker(ctx, "emails", &mq.WorkerConfig{
		HandlerThreads: 4,
		Handler:        mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil }),
	})
	if err != nil {
		panic(err)
	}
	// The first heartbeat reaches Redis moments after the start.
	var live []mq.LiveWorker
	for len(live) == 0 {
		if live, err = client.Inspector().Workers(ctx, "emails"); err != nil {
			panic(err)
		}
		time.Sleep(time.Millisecond)
	}
	w := live[0]
	fmt.Println("this worker:", w.ID == worker.ID(), "this process:", w.PID == os.Getpid())
	fmt.Println("handlers busy:", w.HandlersBusy, "of", w.HandlerThreads)

	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}
	live, _ = client.Inspector().Workers(ctx, "emails")
	fmt.Println("after the stop:", len(live))
	// Output:
	// this worker: true this process: true
	// handlers busy: 0 of 4
	// after the stop: 0
}

// A service routes go-redis's own log lines through its slog logger, once,
// at its start: go-redis has one logger for the whole process.
func ExampleRouteRedisLogs() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	mq.RouteRedisLogs(logger)

	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	client, err := mq.New(rdb, &mq.Config{Logger: logger})
	if err != nil {
		panic(err)
	}
	_ = client
}

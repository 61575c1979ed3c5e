// Package exampleredis runs the example programs: it connects to REDIS_URL
// when it is set, else to an embedded miniredis, so that the examples run
// on a machine with nothing but Go.
package exampleredis

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// Main runs an example against queue, emptied before and after: it
// connects, makes a client that logs at level and up to stderr, and calls
// run until it returns or Ctrl-C. It exits the program on an error.
func Main(queue string, level slog.Level, run func(ctx context.Context, client *mq.Client, queue string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := mainErr(ctx, queue, level, run)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func mainErr(ctx context.Context, queue string, level slog.Level, run func(context.Context, *mq.Client, string) error) error {
	rdb, where, closeRedis, err := Connect()
	if err != nil {
		return err
	}
	defer closeRedis()
	fmt.Println("Redis:", where)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	client, err := mq.New(rdb, &mq.Config{Logger: logger})
	if err != nil {
		return err
	}
	if _, err := client.ClearQueues(ctx, queue); err != nil {
		return err
	}
	if err := run(ctx, client, queue); err != nil {
		return err
	}
	_, err = client.ClearQueues(ctx, queue)
	return err
}

// Connect opens REDIS_URL, or an embedded miniredis when it is unset. It
// answers the client, a description of where it points, and a function
// that closes both.
func Connect() (rdb *redis.Client, where string, closeFn func(), err error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		return rdb, opts.Addr, func() { rdb.Close() }, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, err
	}
	rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
	return rdb, "embedded miniredis (set REDIS_URL to use a real Redis)", func() { rdb.Close(); m.Close() }, nil
}

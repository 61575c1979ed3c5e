// Command cluster enqueues messages to several queues on a Redis Cluster and
// handles them with one worker per queue.
//
//	REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 go run ./examples/cluster
//
// REDIS_CLUSTER_ADDRS lists some or all of the cluster's nodes (the client
// finds the rest). The queues' keys are written as carmine:mq:{QUEUE}:*, so
// that every key of a queue lives in one slot, and different queues spread
// over the cluster's masters.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	env := os.Getenv("REDIS_CLUSTER_ADDRS")
	if env == "" {
		return errors.New("REDIS_CLUSTER_ADDRS is not set: set it to a comma-separated list of " +
			"Redis Cluster node addresses, e.g. REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 " +
			"(one node is enough, the client discovers the others)")
	}
	var addrs []string
	for _, a := range strings.Split(env, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting to the cluster at %v: %w", addrs, err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Cluster: true is required with a *redis.ClusterClient.
	client, err := mq.New(rdb, &mq.Config{Cluster: true, Logger: logger})
	if err != nil {
		return err
	}

	// On a cluster of three masters with the usual slot split, these three
	// names land on three different masters.
	queues := []string{"examples:cluster:emails", "examples:cluster:thumbnails", "examples:cluster:webhooks"}
	if _, err := client.Inspector().ClearQueues(ctx, queues...); err != nil {
		return err
	}
	const perQueue = 5
	for _, q := range queues {
		for i := range perQueue {
			res, err := client.Enqueue(ctx, q, fmt.Sprintf("%s #%d", q, i), &mq.EnqueueOptions{MessageID: fmt.Sprintf("m-%d", i)})
			if err != nil {
				return err
			}
			fmt.Printf("enqueue %s/%s: %s\n", q, res.MessageID, res.Action)
		}
		master, err := rdb.MasterForKey(ctx, "carmine:mq:{"+q+"}:messages")
		if err != nil {
			return err
		}
		fmt.Printf("queue %s lives on master %s\n", q, master.Options().Addr)
	}
	names, err := client.Inspector().QueueNames(ctx, "examples:cluster:*")
	if err != nil {
		return err
	}
	fmt.Printf("queues found on the cluster's masters: %v\n", names)

	var wg sync.WaitGroup
	wg.Add(perQueue * len(queues))
	var mu sync.Mutex
	var workers []*mq.Worker
	for _, q := range queues {
		w, err := client.StartWorker(ctx, q, &mq.WorkerConfig{
			HandlerThreads: 2,
			Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
				defer wg.Done()
				var body string
				if err := m.Decode(&body); err != nil {
					return err
				}
				mu.Lock()
				fmt.Printf("handled %s/%s (attempt %d): %q\n", m.Queue, m.ID, m.Attempt, body)
				mu.Unlock()
				return nil
			}),
		})
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}

	handled := make(chan struct{})
	go func() { wg.Wait(); close(handled) }()
	var waitErr error
	select {
	case <-handled:
	case <-ctx.Done():
		waitErr = ctx.Err()
	case <-time.After(30 * time.Second):
		waitErr = errors.New("timed out waiting for the workers")
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, w := range workers {
		if err := w.Stop(stopCtx); err != nil {
			return err
		}
		st := w.Stats()
		fmt.Printf("worker %s: %d succeeded, %d failed\n", w.Queue(), st.Counts.Succeeded, st.Counts.Failed)
	}
	if waitErr != nil {
		return waitErr
	}
	_, err = client.Inspector().ClearQueues(ctx, queues...)
	return err
}

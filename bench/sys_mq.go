package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// mqSystem is this library with its defaults, through its public API only.
// Payloads are enqueued as mq.Raw, stored as they are, as the other systems
// store them; delayed messages are enqueued with EnqueueOptions
// InitialBackoff.
type mqSystem struct {
	rdb   *redis.Client
	c     *mq.Client
	queue string
	reqs  []mq.EnqueueRequest
}

func init() {
	systems["mq"] = func(ctx context.Context, addr, queue string) (system, error) {
		// Default options: the queues scenario shares this one client
		// between all its workers and enqueues, as a service would.
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		// Warnings and errors only: a worker's start and stop are noise here.
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		// No Carmine worker reads the benchmark's queues (as none reads
		// asynq's or BullMQ's), so delayed messages wait in the due index
		// alone (Config.NoCarmineWorkers); MQ_BENCH_CARMINE_WORKERS=1
		// measures the default, which also puts them on mid-circle.
		c, err := mq.New(rdb, &mq.Config{Logger: log, NoCarmineWorkers: os.Getenv("MQ_BENCH_CARMINE_WORKERS") != "1"})
		if err != nil {
			return nil, err
		}
		return &mqSystem{rdb: rdb, c: c, queue: queue}, nil
	}
}

func (s *mqSystem) enqueueOne(ctx context.Context, p []byte) error {
	_, err := s.c.Enqueue(ctx, s.queue, mq.Raw(p), nil)
	return err
}

func (s *mqSystem) enqueueBatch(ctx context.Context, ps [][]byte) error {
	return s.enqueueMany(ctx, ps, nil)
}

func (s *mqSystem) enqueueDelayed(ctx context.Context, ps [][]byte, delay time.Duration) error {
	return s.enqueueMany(ctx, ps, &mq.EnqueueOptions{InitialBackoff: delay})
}

func (s *mqSystem) enqueueMany(ctx context.Context, ps [][]byte, opts *mq.EnqueueOptions) error {
	s.reqs = s.reqs[:0]
	for _, p := range ps {
		s.reqs = append(s.reqs, mq.EnqueueRequest{Message: mq.Raw(p), Options: opts})
	}
	return s.sendReqs(ctx)
}

// sendReqs enqueues s.reqs in one EnqueueMany, failing on a refusal.
func (s *mqSystem) sendReqs(ctx context.Context) error {
	res, err := s.c.EnqueueMany(ctx, s.queue, s.reqs...)
	if err != nil {
		return err
	}
	for _, r := range res {
		if !r.OK() {
			return r.Refused
		}
	}
	return nil
}

func (s *mqSystem) startWorker(ctx context.Context, handlers int, handle func([]byte)) (func() error, error) {
	return s.startOn(ctx, s.queue, handlers, handle)
}

func (s *mqSystem) startOn(ctx context.Context, queue string, handlers int, handle func([]byte)) (func() error, error) {
	w, err := s.c.StartWorker(ctx, queue, &mq.WorkerConfig{
		HandlerThreads: handlers,
		Handler: mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
			handle(m.Data)
			return nil
		}),
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return w.Stop(ctx)
	}, nil
}

// collected: the queue's messages hash (which holds the content of every
// message the queue keeps, Carmine's layout) holds only the waiting delayed
// messages, so every handled message's content is gone from Redis. One
// HLEN.
func (s *mqSystem) collected(ctx context.Context, waiting int) (bool, int, error) {
	n, err := s.rdb.HLen(ctx, "carmine:mq:"+s.queue+":messages").Result()
	return n <= int64(waiting), 1, err
}

// startQueues starts one worker with one handler (the defaults) per queue,
// all on the one client.
func (s *mqSystem) startQueues(ctx context.Context, queues []string, handle func([]byte)) (func() error, error) {
	var stops []func() error
	stopAll := func() error { // all at once: each may wait for its sleep
		errs := make([]error, len(stops))
		var wg sync.WaitGroup
		for i, stop := range stops {
			wg.Go(func() { errs[i] = stop() })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	for _, q := range queues {
		stop, err := s.startOn(ctx, q, 1, handle)
		if err != nil {
			return nil, errors.Join(err, stopAll())
		}
		stops = append(stops, stop)
	}
	return stopAll, nil
}

func (s *mqSystem) enqueueTo(ctx context.Context, queue string, p []byte) error {
	_, err := s.c.Enqueue(ctx, queue, mq.Raw(p), nil)
	return err
}

func (s *mqSystem) close() error { return s.rdb.Close() }

package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// asynqSystem is github.com/hibiken/asynq with its defaults: tasks get
// asynq's own IDs, default retry and timeout, and no Retention, so a task
// is deleted from Redis as soon as its handler returns successfully (the
// processor's Done script runs synchronously after the handler).
//
// The server also keeps asynq's default TaskCheckInterval: when all its
// queues are empty it waits one second before looking again, which shows
// in the latency scenario.
type asynqSystem struct {
	opt       asynq.RedisClientOpt
	client    *asynq.Client
	inspector *asynq.Inspector
	queue     string
	// rdb is one go-redis client with default options, for the
	// collection checks and the queues scenario; shared is an asynq
	// client on it.
	rdb    *redis.Client
	shared *asynq.Client
}

// asynqTaskType is the type name of every task the bench enqueues.
const asynqTaskType = "bench"

// asynqBatchSenders is how many goroutines enqueueBatch enqueues from.
const asynqBatchSenders = 16

func init() {
	systems["asynq"] = func(ctx context.Context, addr, queue string) (system, error) {
		opt := asynq.RedisClientOpt{Addr: addr}
		s := &asynqSystem{
			opt:       opt,
			client:    asynq.NewClient(opt),
			inspector: asynq.NewInspector(opt),
			queue:     queue,
			rdb:       redis.NewClient(&redis.Options{Addr: addr}),
		}
		s.shared = asynq.NewClientFromRedisClient(s.rdb)
		if err := s.client.Ping(); err != nil {
			s.close()
			return nil, err
		}
		return s, nil
	}
}

func (s *asynqSystem) enqueueOne(ctx context.Context, p []byte) error {
	_, err := s.client.EnqueueContext(ctx, asynq.NewTask(asynqTaskType, p), asynq.Queue(s.queue))
	return err
}

// enqueueBatch: asynq has no batch enqueue API (each EnqueueContext is one
// script call, one round trip). The best a user can do is enqueue
// concurrently, so the batch is split over 16 goroutines, each enqueueing
// its share one task at a time on the client's connection pool. The first
// error, if any, is returned once all have finished.
func (s *asynqSystem) enqueueBatch(ctx context.Context, ps [][]byte) error {
	return s.enqueueConcurrently(ctx, ps)
}

// enqueueDelayed enqueues as enqueueBatch does, each task with
// asynq.ProcessIn(delay): a scheduled task, in asynq's sorted set of them.
func (s *asynqSystem) enqueueDelayed(ctx context.Context, ps [][]byte, delay time.Duration) error {
	return s.enqueueConcurrently(ctx, ps, asynq.ProcessIn(delay))
}

func (s *asynqSystem) enqueueConcurrently(ctx context.Context, ps [][]byte, opts ...asynq.Option) error {
	opts = append(slices.Clip(opts), asynq.Queue(s.queue))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for g := range min(asynqBatchSenders, len(ps)) {
		wg.Go(func() {
			for i := g; i < len(ps); i += asynqBatchSenders {
				_, err := s.client.EnqueueContext(ctx, asynq.NewTask(asynqTaskType, ps[i]), opts...)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// startWorker runs an asynq.Server on the queue alone with handlers as its
// concurrency. The server has its own connection pool, closed by Shutdown,
// which also stops every goroutine the server started.
func (s *asynqSystem) startWorker(ctx context.Context, handlers int, handle func([]byte)) (func() error, error) {
	srv := asynq.NewServer(s.opt, asynq.Config{
		Concurrency: handlers,
		Queues:      map[string]int{s.queue: 1},
		LogLevel:    asynq.ErrorLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		handle(t.Payload())
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return func() error {
		srv.Shutdown() // waits for handlers in flight (up to ShutdownTimeout, 8 s)
		return nil
	}, nil
}

// collected: asynq deletes a task's hash in the same script that takes it
// off the active list once its handler returned (no Retention), so the
// queue's handled tasks are gone from Redis once no task is pending,
// active, completed (kept only with Retention) or waiting for a retry; the
// scheduled (delayed) ones are left. Four commands, read in one pipeline
// on asynq's own keys (asynq:{queue}:...), not through the Inspector,
// whose queue info runs dozens of commands.
func (s *asynqSystem) collected(ctx context.Context, _ int) (bool, int, error) {
	prefix := "asynq:{" + s.queue + "}:"
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.LLen(ctx, prefix+"pending")
		p.LLen(ctx, prefix+"active")
		p.ZCard(ctx, prefix+"completed")
		p.ZCard(ctx, prefix+"retry")
		return nil
	})
	if err != nil {
		return false, len(cmds), err
	}
	var n int64
	for _, c := range cmds {
		n += c.(*redis.IntCmd).Val()
	}
	return n == 0, len(cmds), nil
}

// startQueues runs one asynq.Server for all the queues (asynq's way of
// serving many queues: one server polls them all), with one handler per
// queue as its concurrency, on the one shared go-redis client (default
// options) that enqueueTo uses too.
func (s *asynqSystem) startQueues(ctx context.Context, queues []string, handle func([]byte)) (func() error, error) {
	qs := make(map[string]int, len(queues))
	for _, q := range queues {
		qs[q] = 1
	}
	srv := asynq.NewServerFromRedisClient(s.rdb, asynq.Config{
		Concurrency: len(queues),
		Queues:      qs,
		LogLevel:    asynq.ErrorLevel,
	})
	err := srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		handle(t.Payload())
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return func() error { srv.Shutdown(); return nil }, nil
}

func (s *asynqSystem) enqueueTo(ctx context.Context, queue string, p []byte) error {
	_, err := s.shared.EnqueueContext(ctx, asynq.NewTask(asynqTaskType, p), asynq.Queue(queue))
	return err
}

func (s *asynqSystem) close() error {
	// The shared asynq client owns nothing (its Close only refuses): closing
	// s.rdb is closing it.
	return errors.Join(s.inspector.Close(), s.client.Close(), s.rdb.Close())
}

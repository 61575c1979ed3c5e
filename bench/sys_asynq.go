package main

import (
	"context"
	"slices"
	"sync"

	"github.com/hibiken/asynq"
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
		}
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
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for g := range min(asynqBatchSenders, len(ps)) {
		wg.Go(func() {
			for i := g; i < len(ps); i += asynqBatchSenders {
				if err := s.enqueueOne(ctx, ps[i]); err != nil {
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

// clean reports whether asynq's inspector finds no task of the queue in any
// state (Size counts pending, active, scheduled, retry, archived, completed
// and aggregating tasks). A queue asynq does not know holds nothing.
func (s *asynqSystem) clean(ctx context.Context) (bool, error) {
	info, err := s.inspector.GetQueueInfo(s.queue)
	if err != nil {
		if qs, qerr := s.inspector.Queues(); qerr == nil && !slices.Contains(qs, s.queue) {
			return true, nil
		}
		return false, err
	}
	return info.Size == 0, nil
}

func (s *asynqSystem) close() error {
	ierr := s.inspector.Close()
	if err := s.client.Close(); err != nil {
		return err
	}
	return ierr
}

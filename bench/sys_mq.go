package main

import (
	"context"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// mqSystem is this library with its defaults. Payloads are enqueued as
// mq.Raw, stored as they are, as the other systems store them.
type mqSystem struct {
	rdb   *redis.Client
	c     *mq.Client
	queue string
	reqs  []mq.EnqueueRequest
}

func init() {
	systems["mq"] = func(ctx context.Context, addr, queue string) (system, error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		c, err := mq.New(rdb, nil)
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
	s.reqs = s.reqs[:0]
	for _, p := range ps {
		s.reqs = append(s.reqs, mq.EnqueueRequest{Message: mq.Raw(p)})
	}
	_, err := s.c.EnqueueMany(ctx, s.queue, s.reqs...)
	return err
}

func (s *mqSystem) startWorker(ctx context.Context, handlers int, handle func([]byte)) (func() error, error) {
	w, err := s.c.StartWorker(ctx, s.queue, &mq.WorkerConfig{
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

func (s *mqSystem) clean(ctx context.Context) (bool, error) {
	st, err := s.c.QueueCounts(ctx, s.queue)
	if err != nil {
		return false, err
	}
	return st.Total == 0, nil
}

func (s *mqSystem) close() error { return s.rdb.Close() }

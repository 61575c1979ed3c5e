package main

import (
	"context"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
)

// mq-jobs is the mq system with the job model's steering all on, at
// bounds the benchmark never reaches, so that it measures what they cost
// rather than what they hold back: every message high priority and with
// a limit key (one of 16), the queue with a rate limit and a concurrency
// limit, each per queue and per key (docs/protocol.md §18, §19).
func init() {
	systems["mq-jobs"] = func(ctx context.Context, addr, queue string) (system, error) {
		s, err := systems["mq"](ctx, addr, queue)
		if err != nil {
			return nil, err
		}
		m := s.(*mqSystem)
		lots := mq.Rate{N: 1_000_000, Per: time.Second, Burst: 1_000_000}
		if err := m.c.Inspector().SetLimits(ctx, queue, mq.Limits{Rate: lots, KeyRate: lots,
			Concurrency: 10_000, KeyConcurrency: 10_000}); err != nil {
			return nil, err
		}
		return &mqJobsSystem{mqSystem: m}, nil
	}
	// mq-limits is issue 19's own combination: every message high
	// priority, the queue with a rate and a concurrency limit (no limit
	// keys), at bounds the benchmark never reaches.
	systems["mq-limits"] = func(ctx context.Context, addr, queue string) (system, error) {
		s, err := systems["mq"](ctx, addr, queue)
		if err != nil {
			return nil, err
		}
		m := s.(*mqSystem)
		lots := mq.Rate{N: 1_000_000, Per: time.Second, Burst: 1_000_000}
		if err := m.c.Inspector().SetLimits(ctx, queue, mq.Limits{Rate: lots, Concurrency: 10_000}); err != nil {
			return nil, err
		}
		return &mqJobsSystem{mqSystem: m, noKey: true}, nil
	}
}

type mqJobsSystem struct {
	*mqSystem
	n     int
	noKey bool // mq-limits: no limit key
}

func (s *mqJobsSystem) options() *mq.EnqueueOptions {
	if s.noKey {
		return &mq.EnqueueOptions{Priority: mq.PriorityHigh}
	}
	s.n++
	return &mq.EnqueueOptions{Priority: mq.PriorityHigh, LimitKey: "k" + strconv.Itoa(s.n%16)}
}

func (s *mqJobsSystem) enqueueOne(ctx context.Context, p []byte) error {
	_, err := s.c.Enqueue(ctx, s.queue, mq.Raw(p), s.options())
	return err
}

func (s *mqJobsSystem) enqueueBatch(ctx context.Context, ps [][]byte) error {
	s.reqs = s.reqs[:0]
	for _, p := range ps {
		s.reqs = append(s.reqs, mq.EnqueueRequest{Message: mq.Raw(p), Options: s.options()})
	}
	return s.sendReqs(ctx)
}

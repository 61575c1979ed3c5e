package mq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/protocol"
)

// The worker's side of its engine (internal/engine): the queue's Store
// the parts call Redis through, and the sinks where they tell the worker
// what happened, for its counts, subscribers, monitor and logs. The
// handler's side is in handler.go.

// queueStore is a worker as its engine's Store: the protocol's calls on
// the worker's queue, through its client, within the client's deadlines
// (within) and with Redis's errors mapped to the public ones.
type queueStore Worker

// Poll makes one poll call. Every call may bury a message, the flusher's
// too: each carries the bounds of the dead-letter store.
func (s *queueStore) Poll(ctx context.Context, a protocol.PollArgs) (protocol.PollReply, error) {
	if a.LockTime == 0 {
		a.LockTime = s.cfg.LockTime // the default lock time of a requeue
	}
	a.DeadMaxCount = max(0, s.cfg.DeadLetterMaxCount)
	a.DeadMaxAge = max(0, s.cfg.DeadLetterMaxAge)
	a.ResultMaxCount = max(0, s.cfg.ResultMaxCount)
	a.ResultMaxAge = max(0, s.cfg.ResultMaxAge)
	a.QuarantineAfter = max(0, s.cfg.QuarantineAfter)
	a.IndexOnly = s.c.cfg.NoCarmineWorkers
	return s.c.pollCall(ctx, s.queue, a)
}

// pollCall records a.Completions, then takes up to a.MaxSteps steps of the
// queue's circle, all in one script call, within ctx (see within).
func (c *Client) pollCall(ctx context.Context, queue string, a protocol.PollArgs) (protocol.PollReply, error) {
	a.Lean = c.lean(queue)
	r, err := within(c, ctx, func(ctx context.Context) (protocol.PollReply, error) {
		return protocol.Poll(ctx, c.rdb, c.keys(queue), a)
	})
	if err != nil {
		return r, fmt.Errorf("mq: poll %q: %w", queue, redisError(err))
	}
	return r, nil
}

// Renew pushes locks forward in one script call.
func (s *queueStore) Renew(ctx context.Context, rs []protocol.Renewal) ([]int64, error) {
	tokens, err := within(s.c, ctx, func(ctx context.Context) ([]int64, error) {
		return protocol.Renew(ctx, s.c.rdb, s.c.keys(s.queue), rs)
	})
	if err != nil {
		return nil, fmt.Errorf("mq: renew locks in %q: %w", s.queue, redisError(err))
	}
	return tokens, nil
}

func (s *queueStore) Beat(ctx context.Context, id string, ttl time.Duration, info []byte) error {
	_, err := within(s.c, ctx, func(ctx context.Context) (int64, error) {
		return protocol.Heartbeat(ctx, s.c.rdb, s.c.keys(s.queue), id, ttl, info)
	})
	if err != nil {
		return redisError(err)
	}
	// The beats register the queue again (docs/protocol.md §16), so that
	// a queue cleared under a running worker is listed again.
	return s.c.registerBeat(ctx, s.queue)
}

func (s *queueStore) Gone(ctx context.Context, id string) error {
	_, err := within(s.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.WorkerGone(ctx, s.c.rdb, s.c.keys(s.queue), id)
	})
	return redisError(err)
}

func (s *queueStore) SleepLists(step *protocol.Step) (from, to string) {
	return protocol.SleepLists(s.c.keys(s.queue), step)
}

func (s *queueStore) BlockingMove(ctx context.Context, from, to string, d time.Duration) (bool, error) {
	return within(s.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.BlockingMove(ctx, s.c.rdb, from, to, d)
	})
}

func (s *queueStore) HasReady(ctx context.Context) (bool, error) {
	return within(s.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.HasReady(ctx, s.c.rdb, s.c.keys(s.queue))
	})
}

func (s *queueStore) Nudge(ctx context.Context, from, to string) error {
	_, err := within(s.c, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, protocol.Nudge(ctx, s.c.rdb, from, to)
	})
	return err
}

// fetcherEvents is a worker as its fetcher's events sink.
type fetcherEvents Worker

// Polled calls the worker's monitor.
func (e *fetcherEvents) Polled(ctx context.Context, info engine.PollInfo) {
	e.cfg.Monitor(ctx, MonitorInfo{Queue: e.queue, QueueSize: info.QueueSize,
		NDryRuns: info.NDryRuns, Handled: info.Handled, Slept: info.Slept, Logger: e.log})
}

func (e *fetcherEvents) QueueSize(n int64)     { e.stats.queueSize.Add(float64(n)) }
func (e *fetcherEvents) Skipped(reason string) { e.stats.countSkip(reason) }
func (e *fetcherEvents) PollFailed() {
	e.stats.count(cPollErrors)
	e.subs.emit(Event{Kind: EventPollFailed, Queue: e.queue})
}
func (e *fetcherEvents) BurstPoll() { e.stats.count(cBurstPolls) }
func (e *fetcherEvents) Asleep()    { (*Worker)(e).asleep() }

// warnOfRedis warns, at every start, of settings under which Redis may
// delete queue keys without an error.
func (w *Worker) warnOfRedis(ctx context.Context) {
	for _, warning := range w.c.checkRedis(ctx) {
		w.log.Warn("mq: " + warning)
	}
}

// completionEvents is a worker as its completer's events sink
// (engine.Events), without adding methods to Worker's public set.
type completionEvents Worker

// settledOutcome names an outcome in the terms of the worker's counts,
// events and logs: what the retry policy made of the handler's answer.
func settledOutcome(p engine.Pending) Outcome {
	if p.Cancelled {
		return OutcomeCancelled
	}
	if p.Outcome == protocol.OutcomeRelease {
		return outcomeReleased
	}
	return handlingOutcome(p.Completion, p.Failed)
}

// outcomeReleased names, in logs only, a message given back unhandled: not
// a handling, so not among the Outcomes.
const outcomeReleased Outcome = "released"

// recorded counts an outcome once Redis recorded it: a handling whose
// outcome was fenced off counts as LockLost only.
func (e *completionEvents) Recorded(p engine.Pending) {
	w := (*Worker)(e)
	o := settledOutcome(p)
	switch o {
	case OutcomeSucceeded:
		w.stats.count(cSucceeded)
	case OutcomeDead:
		w.stats.count(cDead)
	case OutcomeFailed:
		w.stats.count(cFailed)
	case OutcomeRetried:
		w.stats.count(cRetried)
	case OutcomeCancelled:
		w.stats.count(cCancelled)
		w.handled(p.ID, p.Attempt, o)
		return
	}
	if p.Backoff > 0 {
		w.stats.count(cBackoffsSet)
	}
	w.handled(p.ID, p.Attempt, o)
	if p.Relay {
		w.relayOwn.add(p)
		w.kickRelay()
	}
}

func (e *completionEvents) LockLost(p engine.Pending) {
	w := (*Worker)(e)
	w.stats.count(cLockLost)
	w.handled(p.ID, p.Attempt, OutcomeLockLost)
	w.messageLog(p.ID, p.Attempt).Warn("mq: lock lost before the outcome was recorded; it was not",
		slog.String("outcome", string(settledOutcome(p))))
}

func (e *completionEvents) Abandoned(ps []engine.Pending, n int, why string) {
	w := (*Worker)(e)
	w.stats.add(cAbandoned, int64(n))
	for _, p := range ps {
		if p.Outcome != protocol.OutcomeRelease { // not a handling
			w.handled(p.ID, p.Attempt, OutcomeAbandoned)
		}
	}
	for range n - len(ps) {
		w.handled("", 0, OutcomeAbandoned)
	}
	for _, p := range ps {
		w.messageLog(p.ID, p.Attempt).Warn("mq: outcome "+why+"; the message stays locked until its lock expires",
			slog.String("outcome", string(settledOutcome(p))))
	}
	if unnamed := n - len(ps); unnamed > 0 {
		w.log.Warn("mq: outcomes "+why+"; their messages stay locked until their locks expire",
			slog.Int("outcomes", unnamed))
	}
}

func (e *completionEvents) RecordFailed(err error, outcomes int, retryIn time.Duration) {
	w := (*Worker)(e)
	w.log.Warn("mq: recording outcomes failed", slog.Any("error", err),
		slog.Int("outcomes", outcomes), slog.Duration("retry_in", retryIn))
}

// messageLog is the worker's logger with a message's id and attempt; it is
// made only when there is something to log.
func (w *Worker) messageLog(id string, attempt int64) *slog.Logger {
	return w.log.With(slog.String("message_id", id), slog.Int64("attempt", attempt))
}

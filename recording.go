package mq

import (
	"context"
	"log/slog"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// The worker's side of its parts' callbacks: the outbox tells it what to
// count and log through outboxEvents, and its pollers call Redis through
// pollQueue.

// pollQueue is the pollFunc of the worker's pollers.
func (w *Worker) pollQueue(ctx context.Context, a protocol.PollArgs) (protocol.PollReply, error) {
	// Every call may bury a message, the flusher's too: each carries the
	// bounds of the dead-letter store.
	if a.LockTime == 0 {
		a.LockTime = w.cfg.LockTime // the default lock time of a requeue
	}
	a.DeadMaxCount = max(0, w.cfg.DeadLetterMaxCount)
	a.DeadMaxAge = max(0, w.cfg.DeadLetterMaxAge)
	a.QuarantineAfter = max(0, w.cfg.QuarantineAfter)
	a.IndexOnly = w.c.cfg.NoCarmineWorkers
	return w.c.pollCall(ctx, w.queue, a)
}

// recorded counts an outcome once Redis recorded it: a handling whose
// outcome was fenced off counts as LockLost only.
func (w *Worker) recorded(p pendingOutcome) {
	o := p.outcome()
	switch o {
	case OutcomeSucceeded:
		w.stats.count(cSucceeded)
	case OutcomeDead:
		w.stats.count(cDead)
	case OutcomeFailed:
		w.stats.count(cFailed)
	case OutcomeRetried:
		w.stats.count(cRetried)
	}
	if p.Backoff > 0 {
		w.stats.count(cBackoffsSet)
	}
	w.handled(p.ID, p.attempt, o)
}

func (w *Worker) lockLost(p pendingOutcome) {
	w.stats.count(cLockLost)
	w.handled(p.ID, p.attempt, OutcomeLockLost)
	w.messageLog(p.ID, p.attempt).Warn("mq: lock lost before the outcome was recorded; it was not",
		slog.String("outcome", string(p.outcome())))
}

func (w *Worker) abandoned(ps []pendingOutcome, n int, why string) {
	w.stats.add(cAbandoned, int64(n))
	for _, p := range ps {
		if p.Outcome != protocol.OutcomeRelease { // not a handling
			w.handled(p.ID, p.attempt, OutcomeAbandoned)
		}
	}
	for range n - len(ps) {
		w.handled("", 0, OutcomeAbandoned)
	}
	for _, p := range ps {
		w.messageLog(p.ID, p.attempt).Warn("mq: outcome "+why+"; the message stays locked until its lock expires",
			slog.String("outcome", string(p.outcome())))
	}
	if unnamed := n - len(ps); unnamed > 0 {
		w.log.Warn("mq: outcomes "+why+"; their messages stay locked until their locks expire",
			slog.Int("outcomes", unnamed))
	}
}

func (w *Worker) recordFailed(err error, outcomes int, retryIn time.Duration) {
	w.log.Warn("mq: recording outcomes failed", slog.Any("error", err),
		slog.Int("outcomes", outcomes), slog.Duration("retry_in", retryIn))
}

// readied wakes the worker's sleeping loops (see alarm).
func (w *Worker) readied() { w.alarm.ring() }

// messageLog is the worker's logger with a message's id and attempt; it is
// made only when there is something to log.
func (w *Worker) messageLog(id string, attempt int64) *slog.Logger {
	return w.log.With(slog.String("message_id", id), slog.Int64("attempt", attempt))
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// handlerLoop is one handler thread: it handles deliveries until the loops
// are done and deliveries is drained. Once polling has stopped, messages not
// yet started are given back instead.
func (w *Worker) handlerLoop(base, polling context.Context, deliveries <-chan delivery, state *atomic.Int32) {
	expiry := newLockExpiry()
	defer expiry.stop()
	for d := range deliveries {
		if polling.Err() != nil || d.stale() {
			w.giveBack(d)
			continue
		}
		took := w.handle(base, d, expiry, state)
		avg := w.handlingNS.Load()
		w.handlingNS.Store(avg + (int64(took)-avg)/handlingTimeSmoothing)
		w.finish(1)
	}
}

// giveBack returns a message taken but not handled (docs/protocol.md §6;
// fencing, §7, applies: if the lock was lost meanwhile, nothing changes).
func (w *Worker) giveBack(d delivery) {
	w.stats.count(cReleased)
	w.subs.emit(Event{Kind: EventReleased, Queue: w.queue, ID: d.step.ID, Attempt: int(d.step.Attempt)})
	w.outbox.add(pendingOutcome{
		Completion: protocol.Completion{ID: d.step.ID, LockedUntil: d.step.LockedUntil, Outcome: protocol.OutcomeRelease},
		attempt:    d.step.Attempt,
	})
	w.finish(1)
}

// Handler thread states (run.handlings).
const (
	handlingIdle int32 = iota
	handlingRunning
	handlingAbandoned // by a stop cut short, which counted it
)

// handle runs the handler on one message and hands in its outcome, unless
// a stop cut short abandoned the handling meanwhile (state). It answers
// how long the handler took.
func (w *Worker) handle(base context.Context, d delivery, expiry *lockExpiry, state *atomic.Int32) time.Duration {
	s := &d.step
	ctx, cancel := context.WithCancelCause(base)
	defer cancel(nil)
	lock := newHeldLock(w.c, w.queue, s.ID, s.LockTime, s.LockedUntil, d.sent.Add(s.LockTime), cancel, expiry)
	defer lock.over()
	msg := &Message{
		Queue:     w.queue,
		ID:        s.ID,
		Data:      s.Data,
		Attempt:   int(s.Attempt),
		LockTime:  s.LockTime,
		Age:       time.Duration(s.Now-s.FirstEnqueued) * time.Millisecond,
		QueueSize: d.queueSize,
		Metadata:  decodeMetadata(s.Metadata),

		MaxAttempts: w.cfg.MaxAttempts,
		codec:       w.c.cfg.Codec,
		lock:        lock,
	}
	if s.Attempt == 1 {
		w.stats.queueingTime.Add(float64(msg.Age))
	}

	var renewWG sync.WaitGroup
	var renewDone chan struct{}
	if !w.cfg.NoLockRenewal {
		renewDone = make(chan struct{})
		renewWG.Add(1)
		go func() {
			defer renewWG.Done()
			w.renewLoop(ctx, lock, renewDone, w.messageLog(s.ID, s.Attempt))
		}()
	}

	state.Store(handlingRunning)
	start := time.Now()
	err := w.call(ctx, msg)
	took := time.Since(start)
	abandoned := !state.CompareAndSwap(handlingRunning, handlingIdle)
	w.stats.handlingTime.Add(float64(took))
	if renewDone != nil {
		close(renewDone)
		renewWG.Wait()
	}
	if abandoned {
		w.observe(msg, took, OutcomeAbandoned, err)
		return took
	}

	oc := outcomeOf(err)
	if oc.failed && ctx.Err() != nil {
		// Cancelled by a stop or a lost lock, the handler gave up: leave the
		// message locked, to be handled again when its lock expires.
		w.stats.count(cAbandoned)
		w.handled(s.ID, s.Attempt, OutcomeAbandoned)
		w.observe(msg, took, OutcomeAbandoned, err)
		w.messageLog(s.ID, s.Attempt).Warn("mq: handling abandoned; the message stays locked until its lock expires",
			slog.Any("error", err), slog.Any("cause", context.Cause(ctx)))
		return took
	}
	c := protocol.Completion{ID: lock.id, LockedUntil: lock.token(), Outcome: oc.name, Backoff: oc.backoff}
	if oc.failed {
		w.applyRetryPolicy(&c, s.Attempt, oc.err)
	}
	w.observe(msg, took, handlingOutcome(c, oc.failed), err)
	// Counted once Redis has recorded it (see Worker.recorded).
	w.outbox.add(pendingOutcome{Completion: c, attempt: s.Attempt, failed: oc.failed})
	return took
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, msg *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mq: handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return w.cfg.Handler.Handle(ctx, msg)
}

// renewLoop pushes lock forward every third of its lock time until done is
// closed or ctx ends. Should renewals fail, the lock's own timer cancels
// the handling when the lock runs out (heldLock); when a renewal finds the
// lock lost, it cancels the handling at once.
func (w *Worker) renewLoop(ctx context.Context, lock *heldLock, done <-chan struct{}, log *slog.Logger) {
	every := max(lock.lockTime/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A renewal may take until the lock could run out: a slow answer
		// still counts, and after that the lock's timer has ended ctx.
		rctx, rcancel := context.WithDeadline(ctx, lock.deadline())
		err := lock.renew(rctx)
		rcancel()
		switch {
		case err == nil:
			w.stats.count(cLocksRenewed)
			w.subs.emit(Event{Kind: EventLockRenewed, Queue: w.queue, ID: lock.id})
		case errors.Is(err, ErrLockLost):
			// Not counted here: the handling is counted once, as lock-lost
			// when its outcome is fenced, or as abandoned.
			log.Warn("mq: lock lost while handling; cancelling the handler")
			return
		case ctx.Err() != nil:
			return
		default:
			log.Warn("mq: lock renewal failed", slog.Any("error", err))
		}
	}
}

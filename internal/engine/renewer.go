package engine

import (
	"context"
	"errors"
	"sync"
	"time"
)

// renewer renews the locks of one handler thread's handlings, every third
// of the lock time while each runs (or every fixed period, for tests that
// need renewals that come often next to a lock long enough that no stall
// of a loaded machine lets it run out). Like lockExpiry it serves handling
// after handling with one timer, moved only when it would fire too late:
// handlings are short next to their locks, so most start and end without
// a renewal, a goroutine or a timer of their own. A renewal runs on the
// timer's goroutine; end waits for one under way, so that none runs once
// the handling's outcome is settled.
type renewer struct {
	period time.Duration // 0: a third of each lock time

	mu    sync.Mutex
	timer *time.Timer
	due   time.Time // when the timer fires; zero when stopped

	// The current handling's, between start and end; ctx is nil between
	// handlings, and once a renewal found the lock lost.
	ctx    context.Context
	d      *Delivery
	lock   *Lock
	events ExecutorEvents
	every  time.Duration
	next   time.Time // when the next renewal is due

	running sync.WaitGroup // a renewal under way
}

func newRenewer(period time.Duration) *renewer {
	r := &renewer{period: period}
	r.timer = time.AfterFunc(time.Hour, r.fire)
	r.timer.Stop()
	return r
}

// start renews lock every third of its lock time (or every period) from
// now, with ctx the handling's context, until end.
func (r *renewer) start(ctx context.Context, d *Delivery, lock *Lock, events ExecutorEvents) {
	every := r.period
	if every <= 0 {
		every = max(lock.lockTime/3, time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx, r.d, r.lock, r.events, r.every = ctx, d, lock, events, every
	r.next = time.Now().Add(every)
	r.armLocked()
}

// armLocked has the timer fire at r.next, unless it fires sooner already
// (it then finds a later time, see fire).
func (r *renewer) armLocked() {
	if r.due.IsZero() || r.next.Before(r.due) {
		r.due = r.next
		r.timer.Reset(time.Until(r.next))
	}
}

// end stops the renewals of the current handling, and waits for one under
// way.
func (r *renewer) end() {
	r.mu.Lock()
	r.ctx, r.d, r.lock, r.events = nil, nil, nil, nil
	r.mu.Unlock()
	r.running.Wait()
}

// stop stops the timer for good.
func (r *renewer) stop() {
	r.end()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer.Stop()
}

// fire renews the current handling's lock if its time has come, and
// otherwise sets the timer for it: a firing meant for an earlier handling
// finds a later time.
func (r *renewer) fire() {
	r.mu.Lock()
	r.due = time.Time{}
	ctx, d, lock, events := r.ctx, r.d, r.lock, r.events
	switch {
	case ctx == nil:
		r.mu.Unlock()
		return
	case ctx.Err() != nil:
		// The handling was cancelled: it is about to end.
		r.mu.Unlock()
		return
	case time.Now().Before(r.next):
		r.armLocked()
		r.mu.Unlock()
		return
	case !time.Now().Before(lock.deadline()):
		// The lock may have run out already (the process stalled past
		// it): its expiry ends the handling, and a renewal could only fail
		// past its deadline, once for each renewal missed meanwhile.
		r.ctx, r.d, r.lock, r.events = nil, nil, nil, nil
		r.mu.Unlock()
		return
	}
	r.running.Add(1)
	r.mu.Unlock()
	defer r.running.Done()

	// A renewal may take until the lock could run out: a slow answer
	// still counts, and after that the lock's timer has ended ctx.
	rctx, rcancel := context.WithDeadline(ctx, lock.deadline())
	err := lock.Renew(rctx)
	rcancel()
	again := true
	switch {
	case err == nil:
		events.LockRenewed(d)
	case errors.Is(err, ErrLockLost):
		// Not counted here: the handling is counted once, as lock-lost
		// when its outcome is fenced, or as abandoned.
		events.RenewFailed(d, err)
		again = false
	case ctx.Err() != nil:
		again = false
	default:
		events.RenewFailed(d, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx != ctx || r.lock != lock {
		return // the handling ended meanwhile
	}
	if !again {
		r.ctx, r.d, r.lock, r.events = nil, nil, nil, nil
		return
	}
	// The next renewal a third of the lock time after this one was due;
	// but after a stall that let more than a period pass, a third of the
	// lock time from now: this renewal pushed the lock from now, and a
	// ticker's catch-up would only send the missed renewals back to back.
	r.next = r.next.Add(r.every)
	if now := time.Now(); r.next.Before(now) {
		r.next = now.Add(r.every)
	}
	r.armLocked()
}

package engine

import (
	"context"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Lock is the lock a handling holds, with the fencing token that
// outcomes and renewals must present. It keeps, by the local clock, a time
// before which the lock cannot have run out (the lock time after the call
// that wrote it was sent), and has the handling's context ended then,
// unless a renewal moved it on: so a handler is stopped no later than its
// lock runs out, whatever Redis or the network do.
type Lock struct {
	store    Store
	id       string
	lockTime time.Duration
	cancel   context.CancelCauseFunc // ends the handling's context
	expiry   *lockExpiry

	mu          sync.Mutex
	lockedUntil int64 // Unix ms, server clock: the token
	lost        bool

	// progress is the handler's latest progress not yet stored
	// (protocol.EncodeProgress), "" for none: it rides on the next
	// renewal (docs/protocol.md §20).
	pmu      sync.Mutex
	progress string
}

// SetProgress keeps the handler's latest progress, to be stored with the
// next renewal.
func (l *Lock) SetProgress(p string) {
	l.pmu.Lock()
	l.progress = p
	l.pmu.Unlock()
}

// takeProgress answers the progress to send, and whether there is one.
func (l *Lock) takeProgress() string {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	return l.progress
}

// sentProgress forgets p once stored, unless a later one came meanwhile.
func (l *Lock) sentProgress(p string) {
	l.pmu.Lock()
	if l.progress == p {
		l.progress = ""
	}
	l.pmu.Unlock()
}

func newLock(store Store, id string, lockTime time.Duration, lockedUntil int64, validUntil time.Time, cancel context.CancelCauseFunc, expiry *lockExpiry) *Lock {
	expiry.arm(validUntil, cancel)
	return &Lock{store: store, id: id, lockTime: lockTime, cancel: cancel, expiry: expiry, lockedUntil: lockedUntil}
}

// deadline is the time before which the lock cannot have run out.
func (l *Lock) deadline() time.Time { return l.expiry.deadline() }

// over ends the lock's use once its handling has returned: the lock expiry
// serves the next handling, and a late ExtendLock (a message kept past its
// handler) answers ErrLockLost.
func (l *Lock) over() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
	l.expiry.disarm()
}

func (l *Lock) token() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lockedUntil
}

// Renew pushes the lock forward once (Message.ExtendLock, and the
// executor's renewals), with the progress kept since the last one. Should
// the reply be lost, the token held still proves the lock (lock-aliases,
// renew.lua). A renewal that finds the message's cancel standing (§20)
// ends the handling's context with ErrCancelled: the fallback of the
// client's cancel subscription.
func (l *Lock) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return ErrLockLost
	}
	sent := time.Now()
	progress := l.takeProgress()
	got, err := l.store.Renew(ctx, []protocol.Renewal{{ID: l.id, LockedUntil: l.lockedUntil, LockTime: l.lockTime, Progress: progress}})
	if err != nil {
		return err
	}
	if got[0] == protocol.NoToken {
		l.lost = true
		l.cancel(ErrLockLost)
		return ErrLockLost
	}
	l.sentProgress(progress)
	token, cancelled := got[0], false
	if token < 0 {
		token, cancelled = -token, true
	}
	l.lockedUntil = token
	l.expiry.arm(sent.Add(l.lockTime), l.cancel)
	if cancelled {
		l.cancel(ErrCancelled)
	}
	return nil
}

// lockExpiry ends a handling's context when its lock could have run out.
// One serves a handler thread, handling after handling, with one timer
// that is moved only when it would fire too late: handlings are short next
// to their locks, so most handlings start and end without touching it.
type lockExpiry struct {
	mu     sync.Mutex
	timer  *time.Timer
	due    time.Time               // when the timer fires; zero when stopped
	at     time.Time               // the current handling's lock runs out no sooner
	cancel context.CancelCauseFunc // the current handling's, nil between handlings
}

func newLockExpiry() *lockExpiry {
	e := &lockExpiry{}
	e.timer = time.AfterFunc(time.Hour, e.fire)
	e.timer.Stop()
	return e
}

// arm has cancel called at at, instead of whatever was armed before.
func (e *lockExpiry) arm(at time.Time, cancel context.CancelCauseFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.at, e.cancel = at, cancel
	if e.due.IsZero() || at.Before(e.due) {
		e.due = at
		e.timer.Reset(time.Until(at))
	}
}

// disarm ends the current handling's watch (the timer, if it fires
// meanwhile, finds nothing to do).
func (e *lockExpiry) disarm() {
	e.mu.Lock()
	e.cancel = nil
	e.mu.Unlock()
}

// stop stops the timer for good.
func (e *lockExpiry) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancel = nil
	e.timer.Stop()
}

func (e *lockExpiry) deadline() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.at
}

// fire cancels the current handling if its time has come, and otherwise
// sets the timer for it: a firing meant for an earlier handling, or for a
// time a renewal has since moved on, finds a later time.
func (e *lockExpiry) fire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.due = time.Time{}
	switch {
	case e.cancel == nil:
	case !time.Now().Before(e.at):
		e.cancel(ErrLockExpired)
	default:
		e.due = e.at
		e.timer.Reset(time.Until(e.at))
	}
}

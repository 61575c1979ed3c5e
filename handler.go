package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Handler handles the messages of a queue. Its answer is the outcome of
// the handling (SPEC section 6):
//
//   - nil: success. The message is done and will be garbage collected.
//   - [SucceedWithBackoff](d): success, and enqueues of the same message id
//     are refused for d (a dedupe window).
//   - [Retry](d): the message is queued again, to be handled after d.
//   - any other error: the message is done and the error is logged.
//
// A panic is recovered and counts as an error. ctx is cancelled when the
// worker is closed, when a Stop deadline passes, when the message's lock
// runs out (cause ErrLockExpired: without renewal, LockTime after the poll
// that took it) or when a renewal finds it lost (cause ErrLockLost); a
// handler that returns an error after its context was cancelled leaves the
// message locked, to be handled again when the lock expires.
type Handler interface {
	Handle(ctx context.Context, msg *Message) error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, msg *Message) error

// Handle calls f(ctx, msg).
func (f HandlerFunc) Handle(ctx context.Context, msg *Message) error { return f(ctx, msg) }

// Message is one message handed to a [Handler]. Its methods are safe for
// concurrent use while the handler runs.
type Message struct {
	// Queue is the queue's name.
	Queue string
	// ID is the message id.
	ID string
	// Data is the message as stored: the codec's encoding, or a [Raw].
	Data []byte
	// Attempt is 1 the first time the message is handed out, and counts
	// up each time its lock expires or a handler asks for a retry.
	Attempt int
	// LockTime is how long the handler may hold the message before it is
	// handed out again (renewal pushes the lock forward).
	LockTime time.Duration
	// Age is the time from the message's first enqueue to this handling.
	Age time.Duration
	// QueueSize is the queue size the worker saw last.
	QueueSize int64

	codec Codec
	lock  *heldLock
}

// Decode decodes the message into v, a non-nil pointer, with the client's
// codec. An error wraps ErrDecode.
func (m *Message) Decode(v any) error { return decode(m.codec, m.Data, v) }

// Value decodes the message into an untyped value: for MessagePack, maps,
// slices, strings and numbers. An error wraps ErrDecode.
func (m *Message) Value() (any, error) {
	var v any
	err := m.Decode(&v)
	return v, err
}

// ExtendLock pushes the message's lock forward by its lock time from now,
// so that a long handling is not handed out again meanwhile (and its
// context does not end with ErrLockExpired). It returns ErrLockLost when
// the lock was lost: the message may be with another handler, and this
// handler's outcome will not be recorded; the handler's context is then
// cancelled.
func (m *Message) ExtendLock(ctx context.Context) error {
	if m.lock == nil {
		return ErrLockLost
	}
	return m.lock.renew(ctx)
}

// ErrLockLost reports that a message's lock expired and was taken by
// another handling, or that the message left the queue meanwhile.
var ErrLockLost = errors.New("mq: lock lost")

// ErrLockExpired is the cause (context.Cause) of a handler's context
// ending because the message's lock ran out: it was not renewed in time, so
// another handling may have the message now.
var ErrLockExpired = errors.New("mq: lock expired")

// heldLock is the lock a handling holds, with the fencing token that
// outcomes and renewals must present. It keeps, by the local clock, a time
// before which the lock cannot have run out (the lock time after the call
// that wrote it was sent), and has the handling's context ended then,
// unless a renewal moved it on: so a handler is stopped no later than its
// lock runs out, whatever Redis or the network do.
type heldLock struct {
	c        *Client
	queue    string
	id       string
	lockTime time.Duration
	cancel   context.CancelCauseFunc // ends the handling's context
	expiry   *lockExpiry

	mu          sync.Mutex
	lockedUntil int64 // Unix ms, server clock: the token
	lost        bool
}

func newHeldLock(c *Client, queue, id string, lockTime time.Duration, lockedUntil int64, validUntil time.Time, cancel context.CancelCauseFunc, expiry *lockExpiry) *heldLock {
	expiry.arm(validUntil, cancel)
	return &heldLock{c: c, queue: queue, id: id, lockTime: lockTime, cancel: cancel, expiry: expiry, lockedUntil: lockedUntil}
}

// deadline is the time before which the lock cannot have run out.
func (l *heldLock) deadline() time.Time { return l.expiry.deadline() }

// over ends the lock's use once its handling has returned: the lock expiry
// serves the next handling, and a late ExtendLock (a Message kept past its
// handler) answers ErrLockLost.
func (l *heldLock) over() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
	l.expiry.disarm()
}

func (l *heldLock) token() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lockedUntil
}

// renew pushes the lock forward once. Should the reply be lost, the token
// held still proves the lock (lock-aliases, renew.lua).
func (l *heldLock) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return ErrLockLost
	}
	sent := time.Now()
	got, err := l.c.renew(ctx, l.queue, []renewal{{id: l.id, lockedUntil: l.lockedUntil, lockTime: l.lockTime}})
	if err != nil {
		return err
	}
	if got[0] == 0 {
		l.lost = true
		l.cancel(ErrLockLost)
		return ErrLockLost
	}
	l.lockedUntil = got[0]
	l.expiry.arm(sent.Add(l.lockTime), l.cancel)
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

// outcome is a handler's answer in the terms of complete.lua.
type outcome struct {
	name    string // outcomeSuccess, outcomeRetry or outcomeError
	backoff time.Duration
	err     error // for outcomeError: what the handler said
}

// outcomeAnswer is the error form of the outcomes that are not plain
// success or failure.
type outcomeAnswer struct {
	outcome
}

func (e *outcomeAnswer) Error() string {
	return fmt.Sprintf("mq: handler asked for %s with backoff %v", e.name, e.backoff)
}

// Retry is a handler's answer asking for the message to be handled again
// after backoff (at once when zero). The attempt number counts up.
func Retry(backoff time.Duration) error {
	return &outcomeAnswer{outcome{name: outcomeRetry, backoff: max(0, backoff)}}
}

// SucceedWithBackoff is a handler's answer of success that also keeps the
// message id for backoff, during which enqueues of the same id are refused
// with ErrBackoff (unless they may requeue).
func SucceedWithBackoff(backoff time.Duration) error {
	return &outcomeAnswer{outcome{name: outcomeSuccess, backoff: max(0, backoff)}}
}

// outcomeOf maps a handler's answer to an outcome.
func outcomeOf(err error) outcome {
	if err == nil {
		return outcome{name: outcomeSuccess}
	}
	var oe *outcomeAnswer
	if errors.As(err, &oe) {
		return oe.outcome
	}
	return outcome{name: outcomeError, err: err}
}

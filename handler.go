package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/protocol"
)

// Handler handles the messages of a queue. Its answer is the outcome of
// the handling (docs/protocol.md §6):
//
//   - nil: success. The message is done and deleted at once.
//   - [SucceedWithBackoff](d): success, and enqueues of the same message id
//     are refused for d (a dedupe window).
//   - [Retry](d): the message is queued again, to be handled after d.
//   - any other error: a failure. The retry policy (WorkerConfig.MaxAttempts
//     and RetryBackoff) queues the message again after a backoff, or,
//     after its last attempt or when the error is marked [Final], makes it
//     a dead letter: kept with the error's text, to be looked at,
//     requeued or deleted (Inspector.DeadLetters). No failure deletes a
//     message without leaving that record.
//
// A handler that returns ErrCancelled (or an error wrapping it) cancels its
// own message: OutcomeCancelled, neither retried nor a dead letter
// (docs/protocol.md §20).
//
// A panic is recovered and counts as an error. ctx is cancelled when the
// worker is closed, when a Stop deadline passes, when the message's lock
// runs out (cause ErrLockExpired: without renewal, LockTime after the poll
// that took it) or when a renewal finds it lost (cause ErrLockLost); a
// handler that returns an error after its context was cancelled leaves the
// message locked, to be handled again when the lock expires. The message's
// own Timeout (EnqueueOptions.Timeout) ends ctx too, with the cause
// ErrHandlingTimeout, however the lock is renewed: that handling has
// failed, whatever the handler answers, and the retry policy decides. A
// cancel of the message from any process (Client.Cancel) ends ctx with
// the cause ErrCancelled, and its outcome is OutcomeCancelled whatever
// the handler answers.
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
	// MaxAttempts is the message's retry bound (its own Policy.MaxAttempts,
	// else WorkerConfig.MaxAttempts; 0 or less: none): a failure on an
	// Attempt at or above it makes the message a dead letter, for
	// middleware that reports outcomes.
	MaxAttempts int
	// Policy is the message's own policy, set at enqueue (docs/protocol.md
	// §14), nil for none.
	Policy *Policy
	// Priority is the message's priority, set at enqueue
	// (docs/protocol.md §18).
	Priority Priority
	// Metadata is what the enqueue put in EnqueueOptions.Metadata, nil
	// for none (and for messages that Carmine enqueued).
	Metadata map[string]string

	codec Codec
	lock  *engine.Lock

	resultMu  sync.Mutex
	result    []byte // the encoded result (SetResult); nil for none
	maxResult int    // Config.MaxMessageSize; 0 for no limit
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
	return m.lock.Renew(ctx)
}

// Final marks err as final: a handler that returns it makes its message a
// dead letter at once, whatever attempts are left.
func Final(err error) error {
	if err == nil {
		err = errors.New("mq: failed for good")
	}
	return finalError{err}
}

type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }

func (e finalError) Unwrap() []error { return []error{e.err, ErrFinal} }

// outcome is a handler's answer in the terms of outcome.lua, before the
// retry policy: failed is set for an error, and then name is
// OutcomeRetry, or OutcomeDead when the error is final.
type outcome struct {
	name    protocol.Outcome
	backoff time.Duration
	failed  bool
	err     error // for a failure: what the handler said
	// followUps are a success's follow-ups ([Then]).
	followUps       []FollowUp
	followUpsRecord []byte
}

// Answer is the error form of a handler's answers that are neither plain
// success nor failure: Retry and SucceedWithBackoff return one. Middleware
// tells them from failures with errors.As:
//
//	var a *mq.Answer
//	if errors.As(err, &a) && a.Kind == mq.OutcomeSucceeded { ... }
type Answer struct {
	// Kind says what the handler asked for: OutcomeSucceeded (with a
	// dedupe window) or OutcomeRetried.
	Kind Outcome
	// Backoff is the wait before the retry, or the dedupe window after the
	// success.
	Backoff time.Duration
	// FollowUps are the messages a success hands off ([Then]).
	FollowUps []FollowUp
}

// Error describes the answer.
func (a *Answer) Error() string {
	return fmt.Sprintf("mq: handler answered %s, with backoff %v", a.Kind, a.Backoff)
}

// Retry is a handler's answer asking for the message to be handled again
// after backoff (at once when zero). The attempt number counts up.
func Retry(backoff time.Duration) error {
	return &Answer{Kind: OutcomeRetried, Backoff: max(0, backoff)}
}

// SucceedWithBackoff is a handler's answer of success that also keeps the
// message id for backoff, during which enqueues of the same id are refused
// with ErrBackoff (unless they may requeue).
func SucceedWithBackoff(backoff time.Duration) error {
	return &Answer{Kind: OutcomeSucceeded, Backoff: max(0, backoff)}
}

// answerOf answers the Answer err is or wraps. A handler's own Answer
// (Then, Retry, SucceedWithBackoff) is taken as it is: errors.As, for one
// a middleware wrapped, costs an allocation and a walk by reflection.
func answerOf(err error) (*Answer, bool) {
	if a, ok := err.(*Answer); ok {
		return a, true
	}
	var a *Answer
	ok := errors.As(err, &a)
	return a, ok
}

// outcomeOf maps a handler's answer to an outcome.
func outcomeOf(err error) outcome {
	if err == nil {
		return outcome{name: protocol.OutcomeSuccess}
	}
	if a, ok := answerOf(err); ok {
		switch a.Kind {
		case OutcomeSucceeded:
			return outcome{name: protocol.OutcomeSuccess, backoff: a.Backoff, followUps: a.FollowUps}
		case OutcomeRetried:
			return outcome{name: protocol.OutcomeRetry, backoff: a.Backoff}
		}
	}
	if errors.Is(err, ErrCancelled) {
		return outcome{name: protocol.OutcomeCancelled}
	}
	if errors.Is(err, ErrFinal) {
		return outcome{name: protocol.OutcomeDead, failed: true, err: err}
	}
	return outcome{name: protocol.OutcomeRetry, failed: true, err: err}
}

// workerHandler is a worker as its executor's Handler and events sink:
// it builds the public Message from the engine's delivery, runs the
// user's Handler, and maps its answer to an outcome by the rules above
// (outcomeOf) and the retry policy (retry.go).
type workerHandler Worker

// Handle runs the user's handler on one delivery.
func (h *workerHandler) Handle(ctx context.Context, d *engine.Delivery, lock *engine.Lock) error {
	w := (*Worker)(h)
	s := &d.Step
	msg := &Message{
		Queue:     w.queue,
		ID:        s.ID,
		Data:      s.Data,
		Attempt:   int(s.Attempt),
		LockTime:  s.LockTime,
		Age:       messageAge(s),
		QueueSize: d.QueueSize,
		Metadata:  decodeMetadata(s.Metadata),

		MaxAttempts: w.maxAttempts(s.Policy),
		Policy:      publicPolicy(s.Policy),
		Priority:    priorityOf(s.Priority),
		codec:       w.c.cfg.Codec,
		lock:        lock,
		maxResult:   w.c.cfg.MaxMessageSize,
	}
	if s.Attempt == 1 {
		w.stats.queueingTime.Add(float64(queueingTime(s)))
	}
	err := w.call(ctx, msg)
	d.Result = msg.takeResult()
	return err
}

// queueingTime is Handling.QueueingTime: from when the message was due
// (its first enqueue, or the end of the backoff it waited out, whichever
// is later) to the poll, by the server's clock.
func queueingTime(s *protocol.Step) time.Duration {
	return time.Duration(max(0, s.Now-max(s.FirstEnqueued, s.Due))) * time.Millisecond
}

// messageAge is Message.Age: from the first enqueue to the poll, by the
// server's clock.
func messageAge(s *protocol.Step) time.Duration {
	return time.Duration(s.Now-s.FirstEnqueued) * time.Millisecond
}

// Settle maps a handling's end to the outcome to record, and tells the
// observer.
func (h *workerHandler) Settle(ctx context.Context, d *engine.Delivery, err error, took time.Duration, abandoned bool) (engine.Pending, bool) {
	w := (*Worker)(h)
	s := &d.Step
	w.stats.handlingTime.Add(float64(took))
	if abandoned {
		w.observe(s, took, OutcomeAbandoned, err)
		return engine.Pending{}, false
	}
	oc := outcomeOf(err)
	if errors.Is(context.Cause(ctx), ErrCancelled) {
		// Cancelled from another process (§20): whatever the handler
		// answered, the outcome is the cancel (Redis records any outcome
		// of the message as cancelled anyway).
		oc = outcome{name: protocol.OutcomeCancelled}
	}
	if oc.failed && ctx.Err() != nil {
		// Cancelled by a stop or a lost lock, the handler gave up: leave the
		// message locked, to be handled again when its lock expires.
		w.stats.count(cAbandoned)
		w.handled(s.ID, s.Attempt, OutcomeAbandoned)
		w.observe(s, took, OutcomeAbandoned, err)
		w.messageLog(s.ID, s.Attempt).Warn("mq: handling abandoned; the message stays locked until its lock expires",
			slog.Any("error", err), slog.Any("cause", context.Cause(ctx)))
		return engine.Pending{}, false
	}
	if len(oc.followUps) > 0 {
		// Hand-offs (§22): encoded now, enqueued or appended to handoffs
		// with the success; one that cannot be makes the handling a
		// failure.
		fu, err := w.c.encodeFollowUps(ctx, w.queue, s.ID, s.LockedUntil, oc.followUps)
		if err != nil {
			oc = outcome{name: protocol.OutcomeRetry, failed: true, err: err}
		} else {
			oc.followUpsRecord = fu
		}
	}
	c := protocol.Completion{ID: s.ID, Outcome: oc.name, Backoff: oc.backoff, FollowUps: oc.followUpsRecord}
	if oc.failed {
		w.applyRetryPolicy(&c, s.Attempt, oc.err, s.Policy)
	} else if c.Outcome == protocol.OutcomeSuccess {
		// Only a success keeps its result (docs/protocol.md §21).
		c.Result = d.Result
		if s.Policy != nil {
			// A dedupe window (§14) is kept at least as long as the
			// message asked, whatever window the handler's answer asked
			// for.
			c.Backoff = max(c.Backoff, s.Policy.UniqueFor)
		}
	}
	w.observe(s, took, handlingOutcome(c, oc.failed), err)
	// Counted once Redis has recorded it (see completionEvents.Recorded).
	batch := s.Policy != nil && s.Policy.Batch != ""
	return engine.Pending{Completion: c, Attempt: s.Attempt, Failed: oc.failed, Relay: protocol.RelayRecord(c.FollowUps) != nil || batch, Batch: batch}, true
}

// Released counts a message given back unhandled, and tells subscribers.
func (h *workerHandler) Released(d *engine.Delivery) {
	h.stats.count(cReleased)
	h.subs.emit(Event{Kind: EventReleased, Queue: h.queue, ID: d.Step.ID, Attempt: int(d.Step.Attempt)})
}

// LockRenewed counts a renewal, and tells subscribers.
func (h *workerHandler) LockRenewed(d *engine.Delivery) {
	h.stats.count(cLocksRenewed)
	h.subs.emit(Event{Kind: EventLockRenewed, Queue: h.queue, ID: d.Step.ID})
}

// RenewFailed logs a failed renewal.
func (h *workerHandler) RenewFailed(d *engine.Delivery, err error) {
	log := (*Worker)(h).messageLog(d.Step.ID, d.Step.Attempt)
	if errors.Is(err, ErrLockLost) {
		log.Warn("mq: lock lost while handling; cancelling the handler")
		return
	}
	log.Warn("mq: lock renewal failed", slog.Any("error", err))
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

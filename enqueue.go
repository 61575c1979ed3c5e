package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/uuid"
)

// EnqueueOptions are the per-message options of an enqueue (docs/protocol.md §3).
// A nil *EnqueueOptions means all defaults.
type EnqueueOptions struct {
	// MessageID identifies the message for dedupe, update and requeue.
	// Default: a random UUID, fixed before the first attempt so that a
	// retried call can never create two messages.
	MessageID string

	// InitialBackoff delays the first handling. Default: none.
	InitialBackoff time.Duration

	// Metadata travels with the message, beside its content rather than
	// inside it (so Carmine's workers still read the content they expect),
	// and reaches the handler as Message.Metadata: a trace context, for
	// one (the mqotel module puts W3C traceparent there). An update
	// (CanUpdate) replaces it; a requeue (CanRequeue) keeps the metadata
	// of the message it follows. At most 64 KiB, encoded. Default: none.
	Metadata map[string]string

	// At, when set, is when to hand the message out first. It is resolved
	// against the Redis server's clock, not this machine's: the delay is
	// At less the server's time when the enqueue runs (none once At is
	// past). It takes the place of InitialBackoff. Default: the zero time,
	// unset.
	At time.Time

	// LockTime is how long a handler may hold this message before it is
	// handed out again. Default: the worker's lock time.
	LockTime time.Duration

	// CanUpdate lets the enqueue replace the content (and lock time) of a
	// message with this id that is still waiting to be handled, or of a
	// requeue already pending. Default: false.
	CanUpdate bool

	// CanRequeue lets the enqueue mark a message with this id that is being
	// handled (locked) or in its dedupe backoff, so that it is queued again
	// with this content once that ends. Default: false.
	CanRequeue bool

	// ResetInitialBackoff sets the backoff of a queued message with this id
	// to InitialBackoff, or to end at At (none when both are zero).
	// Default: false.
	ResetInitialBackoff bool

	// MaxAttempts, when not 0, bounds the hand-outs of this message when
	// it fails, instead of WorkerConfig.MaxAttempts (negative: no bound).
	// It, Backoff, Timeout and UniqueFor are the message's own policy
	// (docs/protocol.md §14), which the handler sees as Message.Policy and
	// a dead letter keeps; they may not go with CanRequeue. Default: the
	// worker's.
	MaxAttempts int

	// Backoff, when set, is the wait before each retry after a failure,
	// instead of WorkerConfig.RetryBackoff. Default: the worker's.
	Backoff *RetryBackoff

	// Timeout, when set, bounds each handling of this message: the
	// handler's context ends that long after it began (cause
	// ErrHandlingTimeout), however its lock is renewed, and the handling
	// counts as failed, retried or buried by the policy. Default: none.
	Timeout time.Duration

	// UniqueFor, when set, keeps the id for that long after the message
	// succeeded or became a dead letter (a dedupe window), and makes an
	// enqueue of this id that finds it queued, being handled or in its
	// window answer ErrDuplicate (a [*DuplicateError]) rather than
	// ErrAlreadyQueued, ErrLocked or ErrBackoff: a producer that gives the
	// id itself may resend such an enqueue blindly, and the message is
	// handled once. Default: none.
	UniqueFor time.Duration

	// Priority is the message's priority within the queue (PriorityHigh,
	// PriorityNormal or PriorityLow; docs/protocol.md §18): this
	// library's workers hand out high messages before normal ones and
	// normal ones before low ones; its retries and releases keep it. A
	// Carmine worker on the queue ignores it. Default: PriorityNormal.
	Priority Priority

	// LimitKey is the key the queue's per-key limits count the message
	// under (Limits.KeyRate, Limits.KeyConcurrency; docs/protocol.md
	// §19), such as a customer id: at most MaxLimitKeyLength bytes, no NUL
	// byte. Default: none, bound by the queue's own limits alone.
	LimitKey string
}

// Action says what a successful enqueue did.
type Action string

// The actions of a successful enqueue.
const (
	// ActionAdded: the message is new to the queue, or its requeue was
	// newly scheduled.
	ActionAdded Action = "added"
	// ActionUpdated: an existing message, or its pending requeue, was
	// updated.
	ActionUpdated Action = "updated"
)

// EnqueueResult is the queue's answer to one enqueue.
type EnqueueResult struct {
	// MessageID is the message's id, given or generated.
	MessageID string
	// Action is what the enqueue did; empty when it was refused.
	Action Action
	// Refused is nil when the enqueue took effect, or why the queue refused
	// it: ErrAlreadyQueued, ErrLocked or ErrBackoff, or ErrDuplicate for a
	// message with a dedupe window (test with errors.Is).
	Refused error
}

// OK tells whether the enqueue took effect.
func (r EnqueueResult) OK() bool { return r.Refused == nil }

// EnqueueRequest is one message of an [Client.EnqueueMany] call.
type EnqueueRequest struct {
	// Message is the message; see [Client.Enqueue].
	Message any
	// Options may be nil for defaults.
	Options *EnqueueOptions
}

// Enqueue adds msg to the queue, or updates or requeues the message with the
// same id, as opts allow. msg is encoded with the client's codec, or stored
// as it is when it is a [Raw].
//
// A refusal by the queue (the id is already queued, locked or in backoff) is
// a normal answer, in the result's Refused field. The error is for bad input
// (nothing is written then), encoding, and Redis: an error wrapping
// ErrRedisFull when Redis is over its maxmemory (nothing is written then
// either).
//
// Enqueue returns by ctx's deadline, whatever the Redis client's own
// timeouts (cheapest with a go-redis client made with
// ContextTimeoutEnabled, which keeps the deadline itself). An error from
// Redis or from ctx leaves it unknown whether the enqueue was applied: an
// enqueue of the same id then tells (it answers ErrAlreadyQueued while the
// message waits), or MessageStatus does.
//
// When the connection fails after Redis applied the enqueue, go-redis may
// send it again. The call carries a token drawn at random, under which
// Redis keeps the call's answer for a while (a receipt, see the protocol
// document), so the call sent again changes nothing and answers what the
// first one did.
//
// Concurrent calls to one queue are coalesced: a call that finds no
// enqueue of its queue in flight goes to Redis at once; calls that arrive
// meanwhile go together in one script call when it returns. Each is
// decided as if enqueued alone, in arrival order, and gets its own result;
// one whose ctx ends returns then without affecting the others (if its
// message had not been sent yet, it never is).
//
// With enqueue middleware (Config.EnqueueMiddleware) the call goes through
// it first.
func (c *Client) Enqueue(ctx context.Context, queue string, msg any, opts *EnqueueOptions) (EnqueueResult, error) {
	if c.enqueueVia != nil {
		return c.enqueueThrough(ctx, queue, msg, opts)
	}
	return c.enqueueOne(ctx, queue, msg, opts)
}

// enqueueOne is Enqueue, without middleware.
func (c *Client) enqueueOne(ctx context.Context, queue string, msg any, opts *EnqueueOptions) (EnqueueResult, error) {
	m, err := c.enqueueMessage(queue, msg, opts)
	if err != nil {
		return EnqueueResult{}, err
	}
	if err := c.register(ctx, queue); err != nil {
		return EnqueueResult{MessageID: m.ID}, fmt.Errorf("mq: enqueue to %q: %w", queue, err)
	}
	code, err := c.enqueueCoalesced(ctx, queue, m)
	if err != nil {
		return EnqueueResult{MessageID: m.ID}, fmt.Errorf("mq: enqueue to %q: %w", queue, redisError(err))
	}
	return enqueueResult(m.ID, code)
}

// enqueueCall returns a new enqueue script call of this client, with room
// for n messages: its own token, marked on its first send, its receipt
// kept as long as the client's resends may come (docs/protocol.md §8).
func (c *Client) enqueueCall(n int) protocol.EnqueueCall {
	return protocol.EnqueueCall{Token: randomID(), Sends: new(protocol.Sends), Keep: c.receiptTTL,
		IndexOnly: c.cfg.NoCarmineWorkers, Messages: make([]protocol.EnqueueMessage, 0, n), Backlogs: &c.backlogs}
}

// enqueueBatch is how many messages one enqueue script call takes in
// EnqueueMany: enough to spread the call's overhead, few enough that one
// call holds Redis for well under a millisecond.
const enqueueBatch = 100

// EnqueueMany enqueues many messages to one queue in one round trip. Each
// message gets its own answer, in order, as from [Client.Enqueue].
//
// All input is checked first: if any message or option is bad, nothing is
// written and the error says which. On a Redis error the results of the
// messages whose enqueue is known are still filled in, and the error joins
// the failures of the others, whose enqueue may or may not have been
// applied (see [Client.Enqueue]).
//
// Messages go to Redis in script calls of up to 100 each, each call atomic
// and with its own receipt, so that go-redis sending the pipeline again
// after a dropped connection changes nothing; an idle worker is woken once
// per call rather than once per message.
//
// With enqueue middleware (Config.EnqueueMiddleware) the call goes through
// it first.
func (c *Client) EnqueueMany(ctx context.Context, queue string, reqs ...EnqueueRequest) ([]EnqueueResult, error) {
	if c.enqueueVia != nil {
		return c.enqueueManyThrough(ctx, queue, reqs)
	}
	return c.enqueueMany(ctx, queue, reqs...)
}

// enqueueMany is EnqueueMany, without middleware.
func (c *Client) enqueueMany(ctx context.Context, queue string, reqs ...EnqueueRequest) ([]EnqueueResult, error) {
	results := make([]EnqueueResult, len(reqs))
	var calls []protocol.EnqueueCall
	for i, r := range reqs {
		m, err := c.enqueueMessage(queue, r.Message, r.Options)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		results[i].MessageID = m.ID
		if i%enqueueBatch == 0 {
			calls = append(calls, c.enqueueCall(min(enqueueBatch, len(reqs)-i)))
		}
		last := &calls[len(calls)-1]
		last.Messages = append(last.Messages, m)
	}
	if len(reqs) == 0 {
		return results, nil
	}
	if err := c.register(ctx, queue); err != nil {
		return results, fmt.Errorf("mq: enqueue to %q: %w", queue, err)
	}
	answers, err := within(c, ctx, func(ctx context.Context) ([]protocol.EnqueueAnswer, error) {
		return protocol.EnqueuePipelined(ctx, c.rdb, c.keys(queue), calls), nil
	})
	if err != nil { // ctx ended first: every call's fate is unknown
		answers = make([]protocol.EnqueueAnswer, len(calls))
		for i := range answers {
			answers[i].Err = err
		}
	}
	var errs []error
	for b, a := range answers {
		first := b * enqueueBatch
		n := len(calls[b].Messages)
		if a.Err != nil {
			errs = append(errs, fmt.Errorf("mq: enqueue messages %d to %d to %q: %w", first, first+n-1, queue, redisError(a.Err)))
			continue
		}
		for k, code := range a.Codes {
			i := first + k
			if results[i], err = enqueueResult(results[i].MessageID, code); err != nil {
				errs = append(errs, fmt.Errorf("mq: enqueue message %d (%s) to %q: %w", i, results[i].MessageID, queue, err))
			}
		}
	}
	return results, errors.Join(errs...)
}

// enqueueMessage checks one enqueue and returns the message as the
// protocol takes it.
func (c *Client) enqueueMessage(queue string, msg any, opts *EnqueueOptions) (protocol.EnqueueMessage, error) {
	if err := ValidateQueueName(queue); err != nil {
		return protocol.EnqueueMessage{}, err
	}
	var o EnqueueOptions
	if opts != nil {
		o = *opts
	}
	if o.MessageID == "" && o.UniqueFor != 0 {
		// A random id is new every call: a resend would not be recognised.
		return protocol.EnqueueMessage{}, fmt.Errorf("%w: UniqueFor needs a MessageID of the producer's choosing", ErrInvalidOption)
	}
	fresh := o.MessageID == ""
	if fresh {
		o.MessageID = uuid.New()
	}
	if err := validateMessageID(o.MessageID); err != nil {
		return protocol.EnqueueMessage{}, err
	}
	if err := nonNegative("InitialBackoff", o.InitialBackoff); err != nil {
		return protocol.EnqueueMessage{}, err
	}
	if err := nonNegative("LockTime", o.LockTime); err != nil {
		return protocol.EnqueueMessage{}, err
	}
	data, err := c.encode(msg)
	if err != nil {
		return protocol.EnqueueMessage{}, err
	}
	if len(data) > c.cfg.MaxMessageSize {
		return protocol.EnqueueMessage{}, fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrMessageTooLarge, len(data), c.cfg.MaxMessageSize)
	}
	meta, err := encodeMetadata(o.Metadata)
	if err != nil {
		return protocol.EnqueueMessage{}, err
	}
	policy, err := policyOf(&o)
	if err != nil {
		return protocol.EnqueueMessage{}, err
	}
	prio, err := priorityArg(o.Priority)
	if err != nil {
		return protocol.EnqueueMessage{}, err
	}
	if err := validateLimitKey(o.LimitKey); err != nil {
		return protocol.EnqueueMessage{}, err
	}
	m := protocol.EnqueueMessage{
		ID: o.MessageID, Data: data, InitialBackoff: o.InitialBackoff, LockTime: o.LockTime,
		CanUpdate: o.CanUpdate, CanRequeue: o.CanRequeue, ResetInitialBackoff: o.ResetInitialBackoff,
		Metadata: meta, Policy: policy, Priority: prio, LimitKey: o.LimitKey, FreshID: fresh,
	}
	if !o.At.IsZero() {
		// 1 ms for any time at or before the epoch: "due already".
		m.At = max(1, o.At.UnixMilli())
	}
	return m, nil
}

// nonNegative refuses a negative duration option. (Durations go to Redis
// in whole milliseconds, rounded up: see protocol.MS.)
func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: %s is negative (%v)", ErrInvalidOption, name, d)
	}
	return nil
}

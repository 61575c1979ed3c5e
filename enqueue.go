package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/uuid"
)

// EnqueueOptions are the per-message options of an enqueue (SPEC section 3).
// A nil *EnqueueOptions means all defaults.
type EnqueueOptions struct {
	// MessageID identifies the message for dedupe, update and requeue.
	// Default: a random UUID, fixed before the first attempt so that a
	// retried call can never create two messages.
	MessageID string

	// InitialBackoff delays the first handling. Default: none.
	InitialBackoff time.Duration

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
	// to InitialBackoff (none when zero). Default: false.
	ResetInitialBackoff bool
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
	// it: ErrAlreadyQueued, ErrLocked or ErrBackoff (test with errors.Is).
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
func (c *Client) Enqueue(ctx context.Context, queue string, msg any, opts *EnqueueOptions) (EnqueueResult, error) {
	id, args, err := c.enqueueArgs(queue, msg, opts)
	if err != nil {
		return EnqueueResult{}, err
	}
	args = append([]any{randomID(), c.receiptTTL.Milliseconds()}, args...)
	reply, err := runScript(ctx, c, enqueueScript, c.keys(queue), args...).StringSlice()
	if err == nil && len(reply) != 1 {
		err = fmt.Errorf("%w: enqueue answered %v", errUnexpectedReply, reply)
	}
	if err != nil {
		return EnqueueResult{MessageID: id}, fmt.Errorf("mq: enqueue to %q: %w", queue, redisError(err))
	}
	return enqueueResult(id, reply[0])
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
func (c *Client) EnqueueMany(ctx context.Context, queue string, reqs ...EnqueueRequest) ([]EnqueueResult, error) {
	results := make([]EnqueueResult, len(reqs))
	var argss [][]any
	for i, r := range reqs {
		id, args, err := c.enqueueArgs(queue, r.Message, r.Options)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		results[i].MessageID = id
		if i%enqueueBatch == 0 {
			call := make([]any, 0, 2+7*min(enqueueBatch, len(reqs)-i))
			argss = append(argss, append(call, randomID(), c.receiptTTL.Milliseconds()))
		}
		argss[len(argss)-1] = append(argss[len(argss)-1], args...)
	}
	if len(reqs) == 0 {
		return results, nil
	}
	cmds := runScriptPipelined(ctx, c, enqueueScript, c.keys(queue), argss)
	var errs []error
	for b, cmd := range cmds {
		first := b * enqueueBatch
		n := min(enqueueBatch, len(reqs)-first)
		reply, err := cmd.StringSlice()
		if err == nil && len(reply) != n {
			err = fmt.Errorf("%w: enqueue answered %d of %d", errUnexpectedReply, len(reply), n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mq: enqueue messages %d to %d to %q: %w", first, first+n-1, queue, redisError(err)))
			continue
		}
		for k, r := range reply {
			i := first + k
			if results[i], err = enqueueResult(results[i].MessageID, r); err != nil {
				errs = append(errs, fmt.Errorf("mq: enqueue message %d (%s) to %q: %w", i, results[i].MessageID, queue, err))
			}
		}
	}
	return results, errors.Join(errs...)
}

// enqueueArgs checks one enqueue and returns its message id and script
// arguments.
func (c *Client) enqueueArgs(queue string, msg any, opts *EnqueueOptions) (string, []any, error) {
	if err := ValidateQueueName(queue); err != nil {
		return "", nil, err
	}
	var o EnqueueOptions
	if opts != nil {
		o = *opts
	}
	if o.MessageID == "" {
		o.MessageID = uuid.New()
	}
	if err := validateMessageID(o.MessageID); err != nil {
		return "", nil, err
	}
	initBackoff, err := durationMS("InitialBackoff", o.InitialBackoff)
	if err != nil {
		return "", nil, err
	}
	lockMS, err := durationMS("LockTime", o.LockTime)
	if err != nil {
		return "", nil, err
	}
	data, err := c.encode(msg)
	if err != nil {
		return "", nil, err
	}
	if len(data) > c.cfg.MaxMessageSize {
		return "", nil, fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrMessageTooLarge, len(data), c.cfg.MaxMessageSize)
	}
	return o.MessageID, []any{
		o.MessageID, data, initBackoff, lockMS,
		boolArg(o.CanUpdate), boolArg(o.CanRequeue), boolArg(o.ResetInitialBackoff),
	}, nil
}

// enqueueResult maps the enqueue script's reply to a result.
func enqueueResult(id, reply string) (EnqueueResult, error) {
	r := EnqueueResult{MessageID: id}
	switch reply {
	case "added":
		r.Action = ActionAdded
	case "updated":
		r.Action = ActionUpdated
	case "already-queued":
		r.Refused = ErrAlreadyQueued
	case "locked":
		r.Refused = ErrLocked
	case "backoff":
		r.Refused = ErrBackoff
	default:
		return r, fmt.Errorf("%w: enqueue answered %q", errUnexpectedReply, reply)
	}
	return r, nil
}

// durationMS converts a non-negative duration to whole milliseconds,
// rounding up so that a positive duration never becomes zero.
func durationMS(name string, d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("%w: %s is negative (%v)", ErrInvalidOption, name, d)
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond), nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

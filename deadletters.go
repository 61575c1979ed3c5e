package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// A dead letter is a message that failed for good: its handler failed on
// its last attempt (WorkerConfig.MaxAttempts), or with an error marked
// Final, or it was handed out WorkerConfig.QuarantineAfter times without
// any outcome (its handlers' processes died). It leaves the queue, and its
// dead letter keeps what is needed to look at it and to try again. Each
// queue keeps at most WorkerConfig.DeadLetterMaxCount dead letters, none
// older than DeadLetterMaxAge. Dead letters live in keys of their own,
// beyond Carmine (docs/protocol.md §11), and ClearQueues removes them.

// DeadLetter is one dead letter. It marshals to JSON.
type DeadLetter struct {
	// ID is the message id.
	ID string `json:"id"`
	// Data is the message as it was stored (the codec's encoding).
	Data []byte `json:"data"`
	// Reason is DeadFailed or DeadQuarantined.
	Reason string `json:"reason"`
	// Error is the last error's text (for a quarantined message, how many
	// hand-outs had no outcome).
	Error string `json:"error"`
	// Attempts is how many times the message was handed out.
	Attempts int64 `json:"attempts"`
	// FirstEnqueued is when the message was first enqueued (zero when
	// unknown), and Died when it became a dead letter, by the Redis
	// server's clock.
	FirstEnqueued time.Time `json:"first_enqueued"`
	Died          time.Time `json:"died"`
	// LockTime is the message's own lock time, 0 for the worker's.
	LockTime time.Duration `json:"lock_time"`

	codec Codec
}

// The reasons of a dead letter.
const (
	// DeadFailed: the handler failed on the last attempt, or with an
	// error marked Final.
	DeadFailed = "failed"
	// DeadQuarantined: handed out too many times without an outcome.
	DeadQuarantined = "quarantined"
)

// Decode decodes the dead letter's message into v with the client's codec.
// An error wraps ErrDecode.
func (d *DeadLetter) Decode(v any) error { return decode(d.codec, d.Data, v) }

// ErrNoDeadLetter reports that a queue has no dead letter of the id asked
// for.
var ErrNoDeadLetter = errors.New("mq: no such dead letter")

func (c *Client) deadLetter(r protocol.DeadRecord) DeadLetter {
	d := DeadLetter{ID: r.ID, Data: r.Data, Reason: r.Reason, Error: r.Error, Attempts: r.Attempts,
		Died: time.UnixMilli(r.Died), LockTime: r.LockTime, codec: c.cfg.Codec}
	if r.FirstEnqueued > 0 {
		d.FirstEnqueued = time.UnixMilli(r.FirstEnqueued)
	}
	return d
}

// DeadLetters answers how many dead letters queue has, and up to limit of
// them, newest first, skipping the offset newest: a page. A page costs
// O(log n + limit), however many there are.
func (c *Client) DeadLetters(ctx context.Context, queue string, offset, limit int) (int64, []DeadLetter, error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, nil, err
	}
	if offset < 0 || limit < 0 {
		return 0, nil, fmt.Errorf("%w: offset %d and limit %d must not be negative", ErrInvalidOption, offset, limit)
	}
	type page struct {
		total int64
		recs  []protocol.DeadRecord
	}
	p, err := within(c, ctx, func(ctx context.Context) (page, error) {
		total, recs, err := protocol.DeadLetters(ctx, c.rdb, c.keys(queue), offset, limit)
		return page{total, recs}, err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("mq: dead letters of %q: %w", queue, redisError(err))
	}
	out := make([]DeadLetter, len(p.recs))
	for i, r := range p.recs {
		out[i] = c.deadLetter(r)
	}
	return p.total, out, nil
}

// DeadLetter answers the dead letter of message id; ErrNoDeadLetter when
// there is none.
func (c *Client) DeadLetter(ctx context.Context, queue, id string) (DeadLetter, error) {
	if err := c.validateIDIn(queue, id); err != nil {
		return DeadLetter{}, err
	}
	type found struct {
		rec protocol.DeadRecord
		ok  bool
	}
	f, err := within(c, ctx, func(ctx context.Context) (found, error) {
		rec, ok, err := protocol.DeadLetter(ctx, c.rdb, c.keys(queue), id)
		return found{rec, ok}, err
	})
	if err != nil {
		return DeadLetter{}, fmt.Errorf("mq: dead letter %q of %q: %w", id, queue, redisError(err))
	}
	if !f.ok {
		return DeadLetter{}, fmt.Errorf("%w: %q in %q", ErrNoDeadLetter, id, queue)
	}
	return c.deadLetter(f.rec), nil
}

// RequeueDeadLetter enqueues the dead letter of message id again as a fresh
// message under the same id (attempts from 1, first enqueued now, its own
// lock time kept), and deletes the dead letter. It answers ErrNoDeadLetter
// when there is none, and ErrAlreadyQueued, changing nothing, when the
// queue holds a message of that id already.
func (c *Client) RequeueDeadLetter(ctx context.Context, queue, id string) error {
	if err := c.validateIDIn(queue, id); err != nil {
		return err
	}
	codes, err := within(c, ctx, func(ctx context.Context) ([]protocol.Code, error) {
		return protocol.RequeueDead(ctx, c.rdb, c.keys(queue), []string{id})
	})
	if err != nil {
		return fmt.Errorf("mq: requeue dead letter %q of %q: %w", id, queue, redisError(err))
	}
	switch codes[0] {
	case protocol.Requeued:
		return nil
	case protocol.DeadMissing:
		return fmt.Errorf("%w: %q in %q", ErrNoDeadLetter, id, queue)
	case protocol.DeadExists:
		return fmt.Errorf("mq: requeue dead letter %q of %q: %w", id, queue, ErrAlreadyQueued)
	}
	return fmt.Errorf("mq: requeue dead letter %q of %q: %w: %q", id, queue, ErrUnexpectedReply, codes[0])
}

// deadBatch is how many dead letters one call of RequeueDeadLetters or
// DeleteDeadLetters takes on, so that no call holds Redis for long.
const deadBatch = 100

// RequeueDeadLetters requeues every dead letter of queue, oldest first, as
// RequeueDeadLetter does, in calls of 100, and answers how many were
// requeued and how many stay because the queue holds a message of their
// id. progress, when not nil, is called after each call with the counts so
// far. A letter it requeued that dies again meanwhile is not requeued
// again.
func (c *Client) RequeueDeadLetters(ctx context.Context, queue string, progress func(requeued, kept int)) (requeued, kept int, err error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, 0, err
	}
	ks := c.keys(queue)
	done := map[string]bool{} // requeued by this call
	for {
		page, err := within(c, ctx, func(ctx context.Context) ([]string, error) {
			return protocol.DeadIDs(ctx, c.rdb, ks, kept, deadBatch)
		})
		if err != nil {
			return requeued, kept, fmt.Errorf("mq: requeue dead letters of %q: %w", queue, redisError(err))
		}
		// Oldest first: a letter requeued here that died again comes after
		// every letter older than the call, and ends it.
		ids := page
		for i, id := range page {
			if done[id] {
				ids = page[:i]
				break
			}
			done[id] = true
		}
		if len(ids) == 0 {
			return requeued, kept, nil
		}
		codes, err := within(c, ctx, func(ctx context.Context) ([]protocol.Code, error) {
			return protocol.RequeueDead(ctx, c.rdb, ks, ids)
		})
		if err != nil {
			return requeued, kept, fmt.Errorf("mq: requeue dead letters of %q: %w", queue, redisError(err))
		}
		for _, code := range codes {
			switch code {
			case protocol.Requeued:
				requeued++
			case protocol.DeadExists:
				kept++
			}
		}
		if progress != nil {
			progress(requeued, kept)
		}
	}
}

// DeleteDeadLetter deletes the dead letter of message id and answers
// whether there was one.
func (c *Client) DeleteDeadLetter(ctx context.Context, queue, id string) (bool, error) {
	if err := c.validateIDIn(queue, id); err != nil {
		return false, err
	}
	ok, err := within(c, ctx, func(ctx context.Context) ([]bool, error) {
		return protocol.DeleteDead(ctx, c.rdb, c.keys(queue), []string{id})
	})
	if err != nil {
		return false, fmt.Errorf("mq: delete dead letter %q of %q: %w", id, queue, redisError(err))
	}
	return ok[0], nil
}

// DeleteDeadLetters deletes every dead letter of queue in one call (Redis
// frees their memory in the background), and answers how many there
// were.
func (c *Client) DeleteDeadLetters(ctx context.Context, queue string) (int64, error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, err
	}
	n, err := within(c, ctx, func(ctx context.Context) (int64, error) {
		return protocol.DeleteAllDead(ctx, c.rdb, c.keys(queue))
	})
	if err != nil {
		return 0, fmt.Errorf("mq: delete dead letters of %q: %w", queue, redisError(err))
	}
	return n, nil
}

func (c *Client) validateIDIn(queue, id string) error {
	if err := ValidateQueueName(queue); err != nil {
		return err
	}
	return validateMessageID(id)
}

package mq

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
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
	// Reason is OutcomeDead (the handler failed on the last attempt, or
	// with an error marked Final) or OutcomeQuarantined.
	Reason Outcome `json:"reason"`
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
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first, the last one included (at most five; empty for a dead letter
	// written by mq v0.1.0).
	AttemptErrors []AttemptError `json:"attempt_errors"`
	// Policy is the message's own policy (EnqueueOptions MaxAttempts,
	// Backoff, Timeout, UniqueFor), nil for none. A dead letter of a
	// message with a dedupe window keeps its id refused for that window
	// (docs/protocol.md §14).
	Policy *Policy `json:"policy,omitempty"`

	codec Codec
}

// Decode decodes the dead letter's message into v with the client's codec.
// An error wraps ErrDecode.
func (d *DeadLetter) Decode(v any) error { return decode(d.codec, d.Data, v) }

func (in *Inspector) deadLetter(r protocol.DeadRecord) DeadLetter {
	d := DeadLetter{ID: r.ID, Data: r.Data, Reason: deadReason(r.Reason), Error: r.Error, Attempts: r.Attempts,
		Died: time.UnixMilli(r.Died), LockTime: r.LockTime, AttemptErrors: attemptErrors(r.AttemptErrors),
		Policy: publicPolicy(r.Policy), codec: in.c.cfg.Codec}
	if r.FirstEnqueued > 0 {
		d.FirstEnqueued = time.UnixMilli(r.FirstEnqueued)
	}
	return d
}

// deadReason is the outcome a dead letter's stored reason names: "dead"
// and "quarantined", and "failed", which versions before the Outcome type
// stored for OutcomeDead. Another word (another program's) is kept as it
// is.
func deadReason(stored string) Outcome {
	switch stored {
	case "dead", "failed":
		return OutcomeDead
	case "quarantined":
		return OutcomeQuarantined
	}
	return Outcome(stored)
}

// DeadLetters returns one page of queue's dead letters, newest first (by
// the time they died, then by id). cursor is "" for the first page, then
// the Cursor of the page before; limit is the page size (DefaultPageSize
// when 0 or less, at most MaxPageSize). A page costs one script call of
// O(log n + limit), however many letters there are.
//
// The cursor holds the place of the page's last letter, not a count, so
// letters that die while a listing goes on (they are newer) do not shift
// it: no letter is seen twice, and none that stays is skipped, even when
// the cursor's own letter was requeued or deleted meanwhile. Their number
// is QueueCounts' Dead.
func (in *Inspector) DeadLetters(ctx context.Context, queue, cursor string, limit int) (Page[DeadLetter], error) {
	if err := ValidateQueueName(queue); err != nil {
		return Page[DeadLetter]{}, err
	}
	died, after, err := parseDeadCursor(cursor)
	if err != nil {
		return Page[DeadLetter]{}, err
	}
	limit = pageSize(limit)
	// One more than the page, to tell whether the listing goes on.
	recs, err := within(in.c, ctx, func(ctx context.Context) ([]protocol.DeadRecord, error) {
		return protocol.DeadLetterPage(ctx, in.c.rdb, in.c.keys(queue), limit+1, died, after)
	})
	if err != nil {
		return Page[DeadLetter]{}, fmt.Errorf("mq: dead letters of %q: %w", queue, redisError(err))
	}
	var out Page[DeadLetter]
	if len(recs) > limit {
		recs = recs[:limit]
		last := recs[limit-1]
		out.Cursor = formatDeadCursor(last.Died, last.ID)
	}
	out.Items = make([]DeadLetter, len(recs))
	for i, r := range recs {
		out.Items[i] = in.deadLetter(r)
	}
	return out, nil
}

// A dead-letter cursor is the time its letter died (Unix ms), a dot, and
// the letter's id in unpadded URL-safe base64, so that any id fits in a
// URL or a command line as it is.
func formatDeadCursor(died int64, id string) string {
	return strconv.FormatInt(died, 10) + "." + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// parseDeadCursor reads a dead-letter cursor; "" is the start, died -1.
func parseDeadCursor(cursor string) (died int64, id string, err error) {
	if cursor == "" {
		return -1, "", nil
	}
	d, enc, ok := strings.Cut(cursor, ".")
	if ok {
		died, err = strconv.ParseInt(d, 10, 64)
		if err == nil && died < 0 {
			err = fmt.Errorf("negative time")
		}
	} else {
		err = fmt.Errorf("no id")
	}
	if err == nil {
		var b []byte
		b, err = base64.RawURLEncoding.DecodeString(enc)
		id = string(b)
	}
	if err != nil {
		return 0, "", fmt.Errorf("%w: dead letter cursor %q: %v", ErrInvalidOption, cursor, err)
	}
	return died, id, nil
}

// DeadLetter answers the dead letter of message id; ErrNoDeadLetter when
// there is none.
func (in *Inspector) DeadLetter(ctx context.Context, queue, id string) (DeadLetter, error) {
	if err := in.validateIDIn(queue, id); err != nil {
		return DeadLetter{}, err
	}
	type found struct {
		rec protocol.DeadRecord
		ok  bool
	}
	f, err := within(in.c, ctx, func(ctx context.Context) (found, error) {
		rec, ok, err := protocol.DeadLetter(ctx, in.c.rdb, in.c.keys(queue), id)
		return found{rec, ok}, err
	})
	if err != nil {
		return DeadLetter{}, fmt.Errorf("mq: dead letter %q of %q: %w", id, queue, redisError(err))
	}
	if !f.ok {
		return DeadLetter{}, fmt.Errorf("%w: %q in %q", ErrNoDeadLetter, id, queue)
	}
	return in.deadLetter(f.rec), nil
}

// RequeueDeadLetter enqueues the dead letter of message id again as a fresh
// message under the same id (attempts from 1, first enqueued now, its own
// lock time kept), and deletes the dead letter. It answers ErrNoDeadLetter
// when there is none, and ErrAlreadyQueued, changing nothing, when the
// queue holds a message of that id already.
func (in *Inspector) RequeueDeadLetter(ctx context.Context, queue, id string) error {
	if err := in.validateIDIn(queue, id); err != nil {
		return err
	}
	codes, err := within(in.c, ctx, func(ctx context.Context) ([]protocol.Code, error) {
		return protocol.RequeueDead(ctx, in.c.rdb, in.c.keys(queue), []string{id})
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
func (in *Inspector) RequeueDeadLetters(ctx context.Context, queue string, progress func(requeued, kept int)) (requeued, kept int, err error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, 0, err
	}
	ks := in.c.keys(queue)
	done := map[string]bool{} // requeued by this call
	for {
		page, err := within(in.c, ctx, func(ctx context.Context) ([]string, error) {
			return protocol.DeadIDs(ctx, in.c.rdb, ks, kept, deadBatch)
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
		codes, err := within(in.c, ctx, func(ctx context.Context) ([]protocol.Code, error) {
			return protocol.RequeueDead(ctx, in.c.rdb, ks, ids)
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
func (in *Inspector) DeleteDeadLetter(ctx context.Context, queue, id string) (bool, error) {
	if err := in.validateIDIn(queue, id); err != nil {
		return false, err
	}
	ok, err := within(in.c, ctx, func(ctx context.Context) ([]bool, error) {
		return protocol.DeleteDead(ctx, in.c.rdb, in.c.keys(queue), []string{id})
	})
	if err != nil {
		return false, fmt.Errorf("mq: delete dead letter %q of %q: %w", id, queue, redisError(err))
	}
	return ok[0], nil
}

// DeleteDeadLetters deletes every dead letter of queue in one call (Redis
// frees their memory in the background), and answers how many there
// were.
func (in *Inspector) DeleteDeadLetters(ctx context.Context, queue string) (int64, error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, err
	}
	n, err := within(in.c, ctx, func(ctx context.Context) (int64, error) {
		return protocol.DeleteAllDead(ctx, in.c.rdb, in.c.keys(queue))
	})
	if err != nil {
		return 0, fmt.Errorf("mq: delete dead letters of %q: %w", queue, redisError(err))
	}
	return n, nil
}

func (in *Inspector) validateIDIn(queue, id string) error {
	if err := ValidateQueueName(queue); err != nil {
		return err
	}
	return validateMessageID(id)
}

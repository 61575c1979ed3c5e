package protocol

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Outcome names a handling's outcome as outcome.lua takes it
// (docs/protocol.md §6).
type Outcome string

// The outcomes of a handling.
const (
	// OutcomeSuccess: the message is done (with a dedupe backoff if one
	// is given).
	OutcomeSuccess Outcome = "success"
	// OutcomeRetry: the message is queued again (after its backoff).
	OutcomeRetry Outcome = "retry"
	// OutcomeDead: the message failed for good: it becomes a dead letter
	// with the completion's error text (§11).
	OutcomeDead Outcome = "dead"
	// OutcomeRelease gives back a message taken but never handed to the
	// handler: unlocked, its attempt uncounted, first in line again.
	OutcomeRelease Outcome = "release"
	// OutcomeCancelled: the message is collected, its pending requeue
	// too, neither retried nor a dead letter (§20). Any outcome of a
	// message whose cancel stands is recorded as this one.
	OutcomeCancelled Outcome = "cancelled"
)

// Completion is the outcome of one handling, fenced on its lock: it is
// written only if LockedUntil still proves the message's lock (§7).
type Completion struct {
	// ID is the message id.
	ID string
	// LockedUntil is the handling's token, from its poll or last renewal.
	LockedUntil int64
	// Outcome is what to write.
	Outcome Outcome
	// Backoff is the backoff to set, 0 for none.
	Backoff time.Duration
	// Error is the error text of an OutcomeDead, kept in the dead letter,
	// or of an OutcomeRetry after a failure, kept with the message among
	// its attempts' errors (§17).
	Error string
	// Result is the result of an OutcomeSuccess, kept in the queue's
	// results (§21); nil or empty for none.
	Result []byte
	// FollowUps are the follow-ups of an OutcomeSuccess, encoded by
	// EncodeFollowUps (nil for none), appended to the queue's handoffs
	// with the outcome for the relay to enqueue, or by EncodeInScript,
	// enqueued by the outcome's script itself (§22).
	FollowUps []byte
}

// Renewal asks to push one lock forward (§7).
type Renewal struct {
	// ID is the message id.
	ID string
	// LockedUntil is the current token.
	LockedUntil int64
	// LockTime is how far from now to push the lock (at least 1 ms).
	LockTime time.Duration
	// Progress is the handler's latest progress to store with the
	// renewal (EncodeProgress), "" for none (§20).
	Progress string
}

// NoToken is the token Renew answers for a lock that was lost.
const NoToken int64 = 0

// argv is the script arguments of rs.
func renewArgv(rs []Renewal) []any {
	args := make([]any, 0, 4*len(rs))
	for _, x := range rs {
		args = append(args, x.ID, strconv.FormatInt(x.LockedUntil, 10), MS(max(time.Millisecond, x.LockTime)), x.Progress)
	}
	return args
}

// Renew pushes locks forward in one script call and answers, per
// renewal, the new token, or NoToken when the lock was lost. A token
// below zero is the new token negated, for a message whose cancel stands
// (§20): the lock was renewed, and the handling is to end.
func Renew(ctx context.Context, r Redis, keys []string, rs []Renewal) ([]int64, error) {
	tokens, err := renewScript.Run(ctx, r, keys, renewArgv(rs)...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(tokens) != len(rs) {
		return nil, fmt.Errorf("%w: renew answered %d of %d", ErrUnexpectedReply, len(tokens), len(rs))
	}
	return tokens, nil
}

package mq

import (
	"errors"
	"fmt"

	"github.com/gocarmine/mq/internal/protocol"
)

// ErrUnexpectedReply reports a reply from Redis of a shape this library
// does not know: a script of another version answered, or the reply was
// damaged. A worker logs it and polls again after a pause.
var ErrUnexpectedReply = fmt.Errorf("mq: %w", protocol.ErrUnexpectedReply)

// This file is the one place where the protocol's answers and Redis's
// errors become the package's public errors.

// redisError maps an error of a protocol call to the public errors: an
// OOM refusal wraps ErrRedisFull, and a reply of an unknown shape
// ErrUnexpectedReply. Other errors are returned as they are.
func redisError(err error) error {
	switch {
	case err == nil:
		return nil
	case protocol.ErrorCode(err) == protocol.OOM:
		return fmt.Errorf("%w: %w", ErrRedisFull, err)
	case errors.Is(err, protocol.ErrUnexpectedReply) && !errors.Is(err, ErrUnexpectedReply):
		return unexpectedReply{err}
	}
	return err
}

// unexpectedReply is a protocol error of ErrUnexpectedReply, told apart by
// errors.Is both as the public error and as the protocol's.
type unexpectedReply struct{ err error }

func (e unexpectedReply) Error() string   { return "mq: " + e.err.Error() }
func (e unexpectedReply) Unwrap() []error { return []error{ErrUnexpectedReply, e.err} }

// enqueueResult maps the enqueue script's answer about one message to a
// result.
func enqueueResult(id string, code protocol.Code) (EnqueueResult, error) {
	r := EnqueueResult{MessageID: id}
	switch code {
	case protocol.Added:
		r.Action = ActionAdded
	case protocol.Updated:
		r.Action = ActionUpdated
	case protocol.AlreadyQueued:
		r.Refused = ErrAlreadyQueued
	case protocol.Locked:
		r.Refused = ErrLocked
	case protocol.Backoff:
		r.Refused = ErrBackoff
	default:
		return r, redisError(fmt.Errorf("%w: enqueue answered %q", protocol.ErrUnexpectedReply, code))
	}
	return r, nil
}

// renewResult maps the token a renewal answered to its error: ErrLockLost
// when the lock was lost.
func renewResult(token int64) error {
	if token == protocol.NoToken {
		return ErrLockLost
	}
	return nil
}

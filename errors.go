package mq

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// This file holds every error value of the package, and is the one place
// where the protocol's answers and Redis's errors become them. Test them
// with errors.Is: the errors returned wrap them with what was asked.

// Errors for bad input. They are returned before anything is written.
var (
	// ErrInvalidQueueName: a queue name is empty, longer than
	// MaxQueueNameLength, or holds glob characters (* ? [ ] \), braces or
	// control characters.
	ErrInvalidQueueName = errors.New("mq: invalid queue name")
	// ErrInvalidMessageID: a message id is empty, longer than
	// MaxMessageIDLength, or equal to the circle's sentinel "end-of-circle".
	ErrInvalidMessageID = errors.New("mq: invalid message id")
	// ErrMessageTooLarge: an encoded message is larger than
	// Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("mq: message too large")
	// ErrInvalidOption: an option, config field or cursor is out of range,
	// such as a negative duration.
	ErrInvalidOption = errors.New("mq: invalid option")
	// ErrClusterModeRequired: New was given a *redis.ClusterClient without
	// Config.Cluster, whose plain key layout cannot work on a cluster.
	ErrClusterModeRequired = errors.New("mq: a cluster client needs Config.Cluster")
)

// Errors that answer an enqueue the queue refused (docs/protocol.md §3).
// They are normal answers, found in [EnqueueResult.Refused], not errors of
// the call.
var (
	// ErrAlreadyQueued: the message id is waiting to be handled (or has a
	// requeue pending) and the enqueue may not update it.
	ErrAlreadyQueued = errors.New("mq: already queued")
	// ErrLocked: the message id is being handled and the enqueue may not
	// requeue it.
	ErrLocked = errors.New("mq: locked")
	// ErrBackoff: the message id was handled and is in its dedupe backoff,
	// and the enqueue may not requeue it.
	ErrBackoff = errors.New("mq: in backoff")
	// ErrDuplicate: the enqueue of a message with a dedupe window
	// (EnqueueOptions.UniqueFor) met its id queued, being handled, or in
	// the window after it was handled (docs/protocol.md §14): the message
	// is there or was, so a caller may resend such an enqueue blindly.
	// The Refused error is a [*DuplicateError], which says what it met.
	ErrDuplicate = errors.New("mq: duplicate")
)

// DuplicateError is the refusal of an enqueue with a dedupe window whose
// id the queue holds (errors.Is(err, ErrDuplicate) holds).
type DuplicateError struct {
	// Met is what the enqueue met: "queued", "locked" or "backoff" (done,
	// in its window).
	Met string
}

// Error describes the refusal.
func (e *DuplicateError) Error() string { return "mq: duplicate (" + e.Met + ")" }

// Unwrap answers ErrDuplicate.
func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// Errors of Redis and of what it stores.
var (
	// ErrRedisFull reports that Redis refused an enqueue because it is
	// over its maxmemory (with the noeviction policy). Nothing was
	// written. Workers go on handling and collecting messages meanwhile,
	// which frees memory.
	ErrRedisFull = errors.New("mq: Redis is out of memory")
	// ErrUnexpectedReply reports a reply from Redis of a shape this
	// library does not know: a script of another version answered, or the
	// reply was damaged. A worker logs it and polls again after a pause.
	ErrUnexpectedReply = fmt.Errorf("mq: %w", protocol.ErrUnexpectedReply)
	// ErrDecode reports a stored message that the codec could not decode.
	ErrDecode = errors.New("mq: cannot decode message")
	// ErrNoDeadLetter reports that a queue has no dead letter of the id
	// asked for.
	ErrNoDeadLetter = errors.New("mq: no such dead letter")
)

// Errors of handlings and workers.
var (
	// ErrLockLost reports that a message's lock expired and was taken by
	// another handling, or that the message left the queue meanwhile.
	ErrLockLost = engine.ErrLockLost
	// ErrLockExpired is the cause (context.Cause) of a handler's context
	// ending because the message's lock ran out: it was not renewed in
	// time, so another handling may have the message now.
	ErrLockExpired = engine.ErrLockExpired
	// ErrHandlingTimeout is the cause (context.Cause) of a handler's
	// context ending at the message's own Timeout (EnqueueOptions.Timeout),
	// however its lock was renewed; the handling has failed, and the
	// retry policy decides what follows (docs/protocol.md §14).
	ErrHandlingTimeout = engine.ErrHandlingTimeout

	// ErrCancelled is the cause (context.Cause) of a handler's context
	// ending because its message was cancelled (Client.Cancel,
	// docs/protocol.md §20). A handler may return it too (or an error
	// wrapping it) to cancel its own message: its outcome is then
	// OutcomeCancelled, not a failure.
	ErrCancelled = engine.ErrCancelled
	// ErrFinal marks a handler's error as final: errors.Is(err, ErrFinal)
	// holds for the errors [Final] returns.
	ErrFinal = errors.New("mq: final")
	// ErrWorkerRunning is Start's answer for a worker that is running
	// already.
	ErrWorkerRunning = errors.New("mq: worker is running already")
	// ErrClientClosed is Worker.Start's answer once the worker's client
	// was closed (Client.Close).
	ErrClientClosed = errors.New("mq: client closed")
)

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
	case protocol.DuplicateQueued:
		r.Refused = &DuplicateError{Met: "queued"}
	case protocol.DuplicateLocked:
		r.Refused = &DuplicateError{Met: "locked"}
	case protocol.DuplicateBackoff:
		r.Refused = &DuplicateError{Met: "backoff"}
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

// transientRedisError tells whether err says that Redis is out of reach
// for now (refused or broken connection, a timeout, a server still
// loading its data after a restart) rather than answering: a call may be
// made again later.
func transientRedisError(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, redis.ErrPoolTimeout) || protocol.ErrorCode(err) == "LOADING"
}

package engine

import "errors"

// The errors of a handling's lock, which the root package re-exports as
// its own (mq.ErrLockLost, mq.ErrLockExpired), so that errors.Is holds
// whichever side made them.
var (
	// ErrLockLost reports that a message's lock expired and was taken by
	// another handling, or that the message left the queue meanwhile.
	ErrLockLost = errors.New("mq: lock lost")
	// ErrLockExpired is the cause (context.Cause) of a handler's context
	// ending because the message's lock ran out.
	ErrLockExpired = errors.New("mq: lock expired")
	// ErrHandlingTimeout is the cause of a handler's context ending at
	// the message's own Timeout (protocol.Policy), renewals or not.
	ErrHandlingTimeout = errors.New("mq: handling timed out")
	// ErrCancelled is the cause of a handler's context ending because its
	// message was cancelled (docs/protocol.md §20), and the answer of a
	// handler that cancels its message itself.
	ErrCancelled = errors.New("mq: cancelled")
)

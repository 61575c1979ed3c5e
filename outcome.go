package mq

// Outcome is what became of one handling of a message, or of the message
// itself: one vocabulary for a worker's counts, its observers, its logs and
// heartbeats, and the reasons of dead letters.
type Outcome string

// The outcomes.
const (
	// OutcomeSucceeded: the handler answered success, with a dedupe window
	// (SucceedWithBackoff) or not.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeRetried: the handler answered Retry; the message is handled
	// again after its backoff.
	OutcomeRetried Outcome = "retried"
	// OutcomeFailed: the handler failed (an error or a panic) and the retry
	// policy queued the message again.
	OutcomeFailed Outcome = "failed"
	// OutcomeDead: the handler failed for good, on the last attempt or with
	// an error marked Final; the message is a dead letter now.
	OutcomeDead Outcome = "dead"
	// OutcomeQuarantined: the message was handed out too many times without
	// any outcome (its handlers' processes died); it is a dead letter now.
	OutcomeQuarantined Outcome = "quarantined"
	// OutcomeLockLost: the outcome was not recorded, because the message's
	// lock was lost meanwhile (fenced off).
	OutcomeLockLost Outcome = "lock_lost"
	// OutcomeAbandoned: the message was left locked, to be handled again
	// once its lock expires (a stop cut the handling short, or its outcome
	// could not be recorded).
	OutcomeAbandoned Outcome = "abandoned"
	// OutcomeCancelled: the message was cancelled (Client.Cancel, or the
	// handler answered ErrCancelled): it is deleted, neither retried nor
	// a dead letter, whatever its handler answered (docs/protocol.md §20).
	OutcomeCancelled Outcome = "cancelled"
)

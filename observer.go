package mq

import (
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Observer is told of every handling as it ends, one call per handling,
// for metrics of its own (histograms of handling and queueing time, say)
// beyond what [Worker.Stats] summarises. Set it in WorkerConfig.Observer.
//
// ObserveHandling is called on the handler's goroutine once the handler
// returned and before its outcome is handed in to be recorded, so it must
// be quick and safe for concurrent use; by the time Worker.Stop returns,
// every handling it waited for has been observed. Messages given back
// unhandled (Counts.Released) are not handlings and are not observed.
type Observer interface {
	ObserveHandling(h Handling)
}

// ObserverFunc adapts a function to an [Observer].
type ObserverFunc func(h Handling)

// ObserveHandling calls f(h).
func (f ObserverFunc) ObserveHandling(h Handling) { f(h) }

// Handling describes one handling that ended, for an [Observer].
type Handling struct {
	// Queue is the queue's name.
	Queue string
	// ID is the message id.
	ID string
	// Attempt is the handling's attempt number (Message.Attempt).
	Attempt int
	// Age is Message.Age: the time from the message's first enqueue to the
	// poll that handed it out, by the Redis server's clock (to the
	// millisecond). It includes a delay the message was enqueued with.
	Age time.Duration
	// QueueingTime is the time from when the message was due to the poll
	// that handed it out, by the Redis server's clock (to the
	// millisecond): from its first enqueue, or from the end of the
	// backoff it waited out (InitialBackoff, At, a retry's backoff),
	// whichever is later, so that a planned delay is not counted as
	// waiting. On the first attempt WorkerStats.QueueingTime samples it.
	// The end of a backoff is known to the poll that wakes the message
	// or meets it on the circle; a message woken by a poll that had no
	// room to hand it out counts from its enqueue (docs/protocol.md §16).
	QueueingTime time.Duration
	// HandlingTime is how long the handler took, by the local clock, as
	// WorkerStats.HandlingTime samples it.
	HandlingTime time.Duration
	// Outcome is what the handler's answer asked for: OutcomeSucceeded
	// (nil or SucceedWithBackoff), OutcomeRetried (Retry), OutcomeFailed
	// (an error or a panic, which the retry policy queues again),
	// OutcomeDead (failed for good: on the last attempt, or Final), or
	// OutcomeAbandoned (the message stays locked, to be handled again once
	// its lock expires: the handler failed after its context was
	// cancelled, or a stop cut short gave up on the handling). Whether
	// Redis then recorded it is counted in WorkerStats and told by
	// EventHandled (an outcome fenced off by a lost lock is
	// OutcomeLockLost there, one a stop could not record OutcomeAbandoned).
	Outcome Outcome
	// Err is the handler's answer: nil, an *Answer (Retry,
	// SucceedWithBackoff), or its error (a panic's included).
	Err error
}

// observe tells the worker's Observer, if any, of a handling that ended.
func (w *Worker) observe(s *protocol.Step, took time.Duration, outcome Outcome, err error) {
	if w.cfg.Observer == nil {
		return
	}
	w.cfg.Observer.ObserveHandling(Handling{
		Queue: w.queue, ID: s.ID, Attempt: int(s.Attempt), Age: messageAge(s), QueueingTime: queueingTime(s),
		HandlingTime: took, Outcome: outcome, Err: err,
	})
}

// handlingOutcome names an outcome for an Observer: c as the retry policy
// left it, of a handling that failed or not.
func handlingOutcome(c protocol.Completion, failed bool) Outcome {
	switch {
	case c.Outcome == protocol.OutcomeCancelled:
		return OutcomeCancelled
	case c.Outcome == protocol.OutcomeDead:
		return OutcomeDead
	case failed:
		return OutcomeFailed
	case c.Outcome == protocol.OutcomeRetry:
		return OutcomeRetried
	}
	return OutcomeSucceeded
}

package mq

import (
	"slices"
	"sync"
	"sync/atomic"
)

// EventKind is the kind of an [Event].
type EventKind string

// The kinds of event a worker sends its subscribers.
const (
	// EventAsleep: a polling loop is blocked at the end of the queue (or on
	// a paused queue), waiting for an enqueue, a resume, a due time or the
	// end of its sleep. It is sent once the blocking call is in place, as
	// WorkerStats' EndOfQueueSleeps counts it.
	EventAsleep EventKind = "asleep"
	// EventHandled: a handling ended and its outcome is settled: recorded
	// (OutcomeSucceeded, OutcomeRetried, OutcomeFailed, OutcomeDead),
	// fenced off by a lost lock (OutcomeLockLost), or given up on
	// (OutcomeAbandoned), as WorkerStats counts it.
	EventHandled EventKind = "handled"
	// EventReleased: a message taken but not handled (prefetched behind
	// busy handlers at a stop, or waiting too long for one) is given back,
	// as WorkerStats' Released counts it.
	EventReleased EventKind = "released"
	// EventLockRenewed: a running handling's lock was renewed, as
	// WorkerStats' LocksRenewed counts it.
	EventLockRenewed EventKind = "lock_renewed"
	// EventPollFailed: a poll failed (Redis down, for one), as WorkerStats'
	// PollErrors counts it; the worker pauses, then polls again.
	EventPollFailed EventKind = "poll_failed"
)

// Event is one thing a worker did, for a subscriber (see
// [Worker.Subscribe]).
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Queue is the worker's queue.
	Queue string
	// ID is the message id of an EventHandled, EventReleased or
	// EventLockRenewed; empty when an abandoned outcome's message is not
	// known.
	ID string
	// Attempt is the attempt number of an EventHandled or EventReleased.
	Attempt int
	// Outcome is what became of the handling of an EventHandled.
	Outcome Outcome
}

// subscriberBuffer is the room of a subscription's channel: events that
// find it full are dropped.
const subscriberBuffer = 4096

// Subscribe returns a channel of the worker's events of the given kinds
// (all kinds when none is given), from now on, and a function that ends
// the subscription and closes the channel. Sending never blocks the
// worker: a subscriber that falls more than 4096 events behind loses the
// ones that do not fit. It is meant for tests and tools that wait for
// something to happen (a message handled, the worker asleep), instead of
// polling Stats. Safe for concurrent use.
func (w *Worker) Subscribe(kinds ...EventKind) (<-chan Event, func()) {
	s := &subscription{ch: make(chan Event, subscriberBuffer), kinds: slices.Clone(kinds)}
	w.subs.add(s)
	return s.ch, sync.OnceFunc(func() { w.subs.remove(s) })
}

// subscribers are a worker's subscriptions.
type subscribers struct {
	n  atomic.Int32 // len(subs), read without the lock on the hot path
	mu sync.Mutex
	s  []*subscription
}

type subscription struct {
	ch    chan Event
	kinds []EventKind
}

func (ss *subscribers) add(s *subscription) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.s = append(ss.s, s)
	ss.n.Store(int32(len(ss.s)))
}

func (ss *subscribers) remove(s *subscription) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.s = slices.DeleteFunc(ss.s, func(x *subscription) bool { return x == s })
	ss.n.Store(int32(len(ss.s)))
	close(s.ch)
}

// emit sends e to every subscription that wants it, dropping it where
// there is no room.
func (ss *subscribers) emit(e Event) {
	if ss.n.Load() == 0 {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.s {
		if len(s.kinds) > 0 && !slices.Contains(s.kinds, e.Kind) {
			continue
		}
		select {
		case s.ch <- e:
		default:
		}
	}
}

// asleep counts an end-of-queue sleep and tells the subscribers, once the
// polling loop is blocked.
func (w *Worker) asleep() {
	w.stats.count(cEndOfQueueSleeps)
	w.subs.emit(Event{Kind: EventAsleep, Queue: w.queue})
}

// handled tells the subscribers what became of a handling.
func (w *Worker) handled(id string, attempt int64, o Outcome) {
	w.subs.emit(Event{Kind: EventHandled, Queue: w.queue, ID: id, Attempt: int(attempt), Outcome: o})
}

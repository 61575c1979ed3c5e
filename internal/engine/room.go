package engine

import (
	"sync/atomic"
	"time"
)

// Prefetching (WorkerConfig.Prefetch), by numbers: a worker may hold
// Limit messages at once, its handlers' plus the prefetch while handlings
// are quick.
const (
	prefetchMaxHandling   = 10 * time.Millisecond // mean handling time, lately
	prefetchMinLockTime   = 10 * time.Second
	handlingTimeSmoothing = 4 // weight 1/4 for each new handling time
)

// Room counts the messages a worker took and is not done with, against
// how many it may hold: the fetcher takes room before a poll, and the
// executor frees it as messages are handled or given back. It is the one
// thing the two share besides the deliveries, so that back-pressure needs
// no call from the executor into the fetcher.
type Room struct {
	handlers, prefetch int
	throttled          bool
	lockTime           time.Duration

	// taken counts messages taken by polls and not yet finished (handled
	// or given back); a poll takes at most Limit() - taken. freed wakes a
	// loop waiting for room when a message finishes.
	taken atomic.Int64
	freed chan struct{}
	// handlingNS is a moving average of handling times, in ns:
	// prefetching waits until handlings have been seen to be quick.
	handlingNS atomic.Int64
}

// NewRoom returns the room of a worker with that many handler threads,
// that prefetch depth (0 or less: none), throttled or not, and that lock
// time.
func NewRoom(handlers, prefetch int, throttled bool, lockTime time.Duration) *Room {
	r := &Room{handlers: handlers, prefetch: prefetch, throttled: throttled, lockTime: lockTime,
		freed: make(chan struct{}, 1)}
	r.handlingNS.Store(int64(2 * prefetchMaxHandling))
	return r
}

// Limit is how many messages the worker may hold at once: one per handler
// thread, plus the prefetch while handlings are quick.
func (r *Room) Limit() int64 {
	n := int64(r.handlers)
	if r.Prefetching() {
		n += int64(r.prefetch)
	}
	return n
}

// Taken is how many messages the worker holds now: taken by polls and not
// yet handled or given back.
func (r *Room) Taken() int64 { return r.taken.Load() }

// Prefetching tells whether the worker takes messages beyond its handlers.
func (r *Room) Prefetching() bool {
	return r.prefetch > 0 && !r.throttled && r.lockTime >= prefetchMinLockTime &&
		time.Duration(r.handlingNS.Load()) < prefetchMaxHandling
}

// TryTake takes all the room there is, when there is enough: any, with
// nothing waiting for a handler (waiting is how many deliveries do);
// otherwise half the limit, so that a poll takes many messages at once.
// It answers how much it took, 0 for none.
func (r *Room) TryTake(waiting int) int {
	for {
		limit := r.Limit()
		taken := r.taken.Load()
		room := limit - taken
		if room <= 0 || (waiting > 0 && 2*room < limit) {
			return 0
		}
		if r.taken.CompareAndSwap(taken, limit) {
			return int(room)
		}
	}
}

// Freed answers a channel that receives after messages are finished.
func (r *Room) Freed() <-chan struct{} { return r.freed }

// Finish accounts for n messages taken that are done with: handled, given
// back, or not handed out after all.
func (r *Room) Finish(n int) {
	if n <= 0 {
		return
	}
	r.taken.Add(-int64(n))
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// handled folds a handling time into the moving average.
func (r *Room) handled(took time.Duration) {
	avg := r.handlingNS.Load()
	r.handlingNS.Store(avg + (int64(took)-avg)/handlingTimeSmoothing)
}

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
	// settleHandling is the mean handling time, lately, under which a
	// loop about to poll with nothing waiting for a handler waits for the
	// handlings under way while another poll is under way
	// (Room.Finishing), for at most settleWait (Fetcher.reserve): they
	// end well within a poll's round trip.
	settleHandling = 100 * time.Microsecond
	settleWait     = time.Millisecond
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
	// underWay counts the room taken by polls under way (sent, not yet
	// answered): the rest of taken is the messages in the worker's hands.
	underWay atomic.Int64
	// handlingNS is a moving average of handling times, in ns:
	// prefetching waits until handlings have been seen to be quick.
	handlingNS atomic.Int64

	// Quarantine without innocent victims (docs/protocol.md §11): solo
	// counts the suspects the worker holds, each handed out alone: while
	// one is held, no poll takes anything more, so that if it kills the
	// process it dies alone. drainUntil (Unix ns, 0 for none) is set once
	// a poll left a suspect for a worker holding nothing: until then,
	// polls wait until the worker holds nothing, and the next poll,
	// holding nothing, may take it. The drain is bounded, so that a
	// handler stuck past its lock cannot stop the worker for good.
	solo       atomic.Int64
	drainUntil atomic.Int64
	// lapsed counts the handlings still running past their lock (it ran
	// out, or was lost): their messages are no longer the worker's, so
	// they are not held (Lapse).
	lapsed atomic.Int64
	// shared, when set (Share), counts this room's messages with those
	// of the process's other workers: held, solo and the drain are the
	// process's.
	shared *Holdings
	// poolFields join the room with other queues' rooms sharing one
	// executor (pool.go); unused for a plain worker.
	poolFields
}

// MaxDrain bounds a worker's drain for a suspect (Room.Drain): after it,
// polls go on while the worker still holds messages; a suspect that no
// worker holding nothing took within its lock time then goes to a busy
// one (docs/protocol.md §11, Quarantine).
const MaxDrain = time.Second

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
//
// While the worker holds a suspect handed out alone, it takes nothing;
// while it drains for one, it takes nothing until it holds nothing.
func (r *Room) TryTake(waiting int) int {
	if r.pool != nil {
		return r.pool.tryTake(r, waiting)
	}
	for {
		limit := r.Limit()
		taken := r.taken.Load()
		room := limit - taken
		if room <= 0 || (waiting > 0 && 2*room < limit) {
			return 0
		}
		if r.soloAll() > 0 || (r.heldAll() > 0 && r.Draining()) {
			return 0
		}
		if r.shared != nil {
			// Counted first, so that another room's Held never misses it.
			r.shared.taken.Add(room)
		}
		if r.taken.CompareAndSwap(taken, limit) {
			return int(room)
		}
		if r.shared != nil {
			r.shared.taken.Add(-room)
		}
	}
}

// Sending tells that a poll which took n of the room is under way, until
// Answered.
func (r *Room) Sending(n int) { r.underWay.Add(int64(n)) }

// Answered tells that the poll of Sending(n) was answered, and wakes a
// loop waiting for room: one waiting for the handlings in hand
// (Finishing) waits no longer.
func (r *Room) Answered(n int) {
	r.underWay.Add(-int64(n))
	r.signalFreed()
}

// Finishing tells whether a poll is under way while the handlers still
// hold messages, and handlings are quick enough (see settleHandling) that
// those messages are soon done with: a loop about to poll with no
// message waiting for a handler then waits for them, so that its poll
// takes their room too rather than leave it to a poll of its own.
//
// A throttled worker's loops, and a room of a Pool, whose queues share
// their handlers, never wait so.
func (r *Room) Finishing() bool {
	if r.pool != nil || r.throttled || time.Duration(r.handlingNS.Load()) >= settleHandling {
		return false
	}
	under := r.underWay.Load()
	return under > 0 && r.taken.Load()-under-r.lapsed.Load() > 0
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
	r.signalFreed()
	if r.shared != nil {
		r.shared.taken.Add(-int64(n))
		r.shared.wake(r)
	}
}

func (r *Room) signalFreed() {
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

// heldAll and soloAll are the process's counts when the room shares
// them, else its own.
func (r *Room) heldAll() int64 {
	if r.shared != nil {
		return r.shared.Held()
	}
	return r.taken.Load() - r.lapsed.Load()
}

func (r *Room) soloAll() int64 {
	if r.shared != nil {
		return r.shared.solo.Load()
	}
	return r.solo.Load()
}

// Held is how many messages the worker holds (the process's workers, when
// the room shares a Holdings) besides the n a poll about to be sent has
// taken room for: what the poll tells Redis (PollArgs.Held). Room another
// loop took for a poll still under way counts as held.
func (r *Room) Held(n int) int { return int(max(0, r.heldAll()-int64(n))) }

// Solo accounts for a suspect handed out alone (protocol.Step.Solo):
// nothing more is taken until it is finished (finishDelivery).
func (r *Room) Solo() {
	r.solo.Add(1)
	if r.shared != nil {
		r.shared.solo.Add(1)
	}
}

// Drain makes polls wait until the worker holds nothing, for at most d: a
// poll left a suspect for a worker holding nothing. Drained ends that,
// once a poll that held nothing came back without leaving one.
func (r *Room) Drain(d time.Duration) { r.drainUntil.Store(time.Now().Add(d).UnixNano()) }
func (r *Room) Drained()              { r.drainUntil.Store(0) }

// Draining tells whether polls wait for the worker to hold nothing.
func (r *Room) Draining() bool { return time.Now().UnixNano() < r.drainUntil.Load() }

// DrainLeft is how long the drain still lasts, 0 for none.
func (r *Room) DrainLeft() time.Duration {
	return max(0, time.Duration(r.drainUntil.Load()-time.Now().UnixNano()))
}

// SoloHeld is how many suspects handed out alone the worker holds.
func (r *Room) SoloHeld() int64 { return r.solo.Load() }

// lapse accounts for a handling whose lock ran out or was lost while its
// handler still runs: its message is no longer held, and if it was a
// suspect held alone, the worker may take messages again. The handling's
// end then calls finishDelivery with lapsed set.
func (r *Room) lapse(d *Delivery) {
	r.lapsed.Add(1)
	if r.shared != nil {
		r.shared.lapsed.Add(1)
	}
	r.endSolo(d)
	r.signalFreed()
	if r.shared != nil {
		r.shared.wake(r)
	}
}

func (r *Room) endSolo(d *Delivery) {
	if d.Step.Solo {
		r.solo.Add(-1)
		if r.shared != nil {
			r.shared.solo.Add(-1)
		}
	}
}

// finishDelivery is Finish for one delivery, handled or given back; a
// suspect handed out alone lets the worker take messages again. lapsed
// tells that lapse accounted for it already.
func (r *Room) finishDelivery(d *Delivery, lapsed bool) {
	if lapsed {
		r.lapsed.Add(-1)
		if r.shared != nil {
			r.shared.lapsed.Add(-1)
		}
		r.Finish(1)
		return
	}
	if d.Step.Solo {
		r.solo.Add(-1)
		if r.shared != nil {
			r.shared.solo.Add(-1)
		}
	}
	r.Finish(1)
}

// handled folds a handling time into the moving average.
func (r *Room) handled(took time.Duration) {
	avg := r.handlingNS.Load()
	r.handlingNS.Store(avg + (int64(took)-avg)/handlingTimeSmoothing)
}

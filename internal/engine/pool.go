package engine

import (
	"sync"
	"sync/atomic"
)

// Pool joins the rooms of several queues' fetchers that share one
// executor (a multi-queue worker), so that the queues take turns for its
// handler threads, in strict or weighted order.
//
// Strict: a queue's loops poll only while every queue before it came
// back empty (each of its polling loops sleeps at the end of its queue,
// or is paused); the handler threads all go to whichever queue polls.
//
// Weighted: each queue is owed a share of the limit by its weight, while
// its loops are awake; a queue whose loops all sleep lends its share to
// the others, and gets it back as their messages finish.
//
// A room in no pool (a plain worker) never reads any of this: one nil
// check per take.
type Pool struct {
	strict  bool
	weights []int
	rooms   []*Room
	total   int // of the weights

	mu      sync.Mutex // serialises takes, which read every room
	changed alarm      // rung when a queue starts or stops sleeping
}

// NewPool joins rooms, in order, with these weights (weighted) or none
// (strict: weights is ignored). A room joins one pool at most, before its
// fetcher starts.
func NewPool(strict bool, rooms []*Room, weights []int) *Pool {
	p := &Pool{strict: strict, rooms: rooms, weights: weights, changed: newAlarm()}
	for i, r := range rooms {
		r.pool, r.poolIndex = p, i
		if !strict {
			p.total += max(1, weights[i])
		}
	}
	return p
}

// Reset counts each room's polling loops awake, for a run starting with
// that many per room: a queue is taken for busy until its loops have all
// come back empty once.
func (p *Pool) Reset(loopsPerRoom int) {
	for _, r := range p.rooms {
		r.awake.Store(int64(loopsPerRoom))
	}
	p.changed.ring()
}

// share is what room i is owed of limit by its weight: its part rounded
// down, and at least 1.
func (p *Pool) share(i int, limit int64) int64 {
	return max(1, limit*int64(max(1, p.weights[i]))/int64(p.total))
}

// tryTake is Room.TryTake for a room in the pool: the room free in the
// pool, less (weighted) what the other awake queues are owed and do not
// hold.
func (p *Pool) tryTake(r *Room, waiting int) int {
	if r.soloAll() > 0 || (r.heldAll() > 0 && r.Draining()) {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// One limit for the pool, with the prefetch while any queue's
	// handlings are quick: the queues share one channel to the handlers,
	// so a queue's share is of what the worker holds, prefetch included,
	// and a queue whose own handlings are slow is not held out by the
	// prefetch of a quick one.
	limit := int64(0)
	for _, o := range p.rooms {
		limit = max(limit, o.Limit())
	}
	free, own := limit, limit
	for j, o := range p.rooms {
		t := o.taken.Load()
		free -= t
		if p.strict || o == r {
			continue
		}
		if o.awake.Load() > 0 {
			free -= max(0, p.share(j, limit)-t)
		}
	}
	if !p.strict {
		own = p.share(r.poolIndex, limit)
	}
	if free <= 0 || (waiting > 0 && 2*free < own) {
		return 0
	}
	if r.shared != nil {
		r.shared.taken.Add(free)
	}
	r.taken.Add(free)
	return int(free)
}

// mayPoll tells whether room r's loops may poll now: always when
// weighted; when strict, once every queue before it came back empty.
func (p *Pool) mayPoll(r *Room) bool {
	if !p.strict {
		return true
	}
	for _, o := range p.rooms[:r.poolIndex] {
		if o.awake.Load() > 0 {
			return false
		}
	}
	return true
}

// loopAwake counts a polling loop of r waking (d = 1) or going to sleep
// at the end of its queue, or returning (d = -1). When the queue turns
// from busy to idle or back, the other queues' loops look again: a
// strict one may poll, a weighted one may take what was lent or must
// leave what is owed.
func (p *Pool) loopAwake(r *Room, d int64) {
	n := r.awake.Add(d)
	if (d < 0 && n == 0) || (d > 0 && n == 1) {
		p.changed.ring()
		for _, o := range p.rooms {
			if o != r {
				o.signalFreed()
			}
		}
	}
}

// poolFields are a Room's part in a Pool.
type poolFields struct {
	pool      *Pool
	poolIndex int
	// awake counts the room's polling loops not asleep at the end of its
	// queue: while any is, the queue counts as busy.
	awake atomic.Int64
}

// LoopAwake tells the room's pool, if any, that one of its polling loops
// woke (d = 1) or went to sleep at the end of the queue or returned
// (d = -1).
func (r *Room) LoopAwake(d int64) {
	if r.pool != nil {
		r.pool.loopAwake(r, d)
	}
}

// MayPoll tells whether the room's loops may poll now (Pool, strict).
func (r *Room) MayPoll() bool { return r.pool == nil || r.pool.mayPoll(r) }

// Awake tells whether any of the room's polling loops is awake (Pool):
// not asleep at the end of its queue.
func (r *Room) Awake() bool { return r.awake.Load() > 0 }

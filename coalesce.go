package mq

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Concurrent Enqueue calls to one queue are coalesced, the way a database
// groups commits: a call that finds no enqueue of its queue in flight
// sends its own script call at once, with no added wait; calls that arrive
// while one is in flight wait together, and go in one script call as soon
// as it returns (up to coalesceMax messages or coalesceBytes of content a
// call; what is left goes in the next), or, once overlapAt of them wait,
// in a second call at once beside it (below). Redis decides the messages
// of a coalesced call one by one in arrival order, exactly as if each were
// enqueued alone (docs/protocol.md §3), and each caller gets its own
// answer. Two calls in flight together may reach Redis in either order:
// their callers called concurrently, and no order between them is owed.
// A call has one receipt (§8), so a resend of it answers every message's
// first answer again and changes nothing.
//
// There is no goroutine to start or stop: a queue's group is driven by its
// callers. The call that finds the group idle runs its own script call;
// when it returns and calls are waiting, it starts one goroutine that runs
// their script calls one after the other, and that goroutine ends as soon
// as nobody waits. The caller that makes overlapAt wait while one call is
// in flight starts a second such goroutine; of two, one that finds fewer
// than overlapAt waiting when its call returns ends, leaving them to the
// other's next call (stop), so that at most two calls are in flight and
// a small group never splits into calls taking turns. The two calls share
// what the client knows of the queue's wake backlog (protocol.Backlogs):
// either's answer may change it while the other is in flight, and a call
// that went short on a stale word of it changes nothing, answers so, and
// goes again full (docs/protocol.md §3): a round trip more, never a wrong
// write. Before it takes the next call's messages, a goroutine lets the
// callers it just answered run, so that those who call again at once go
// in that call too: at G=8 concurrent callers, 7.6 messages a call rather
// than 4-5 in two halves taking turns, with 0.58x the Redis commands and
// 0.63-0.75x the Redis CPU a message, and 1.2-2.0x the messages a second
// (bench producer-8, three invocations of 9 interleaved runs, a loaded
// machine). It yields until they stop joining or 32 wait (settle), not
// once: at G=8, 7.9 messages a call rather than 7.4 and 1.1-1.3x the
// messages a second; at G=64, about 55 rather than 38-41, 1.05-1.2x
// (go test -bench, 8 interleaved runs; loaded machine). A client that
// is dropped (or whose Redis client is closed, which fails the calls in
// flight at once) leaves nothing running.
//
// A waiting caller returns as soon as its context ends. If its message has
// not gone to Redis yet it is taken out of the group, so that nothing of
// it is ever written; if it has, its answer is dropped when it comes (the
// enqueue may have been applied, as for any call given up on) and the
// others are not affected.
//
// One call in flight makes a cycle serial: Redis runs the call while the
// client waits, then the client reads the answer, wakes the callers, lets
// them call again and writes the next call while Redis waits. At G=8
// (about 125 µs a cycle on an idle machine) Redis's part is about half:
// 207,500 instructions for a call of 8 new messages with ids the client
// drew against 93,800 for one of 1, about 77,500 a call and 16,000 a
// message (callgrind, the whole server). The client's part (a runtime trace,
// medians, loaded machine) is mostly go-redis's syscalls and the
// scheduler's: the read, its health check of the pooled connection, the
// write, the futex that wakes an idle P for the first caller answered
// (whose thread comes too late to run any: the 8 callers run one after
// the other on the runner's P, about 1 µs each), and the wake-ups of
// both sides from epoll; this package's own code is about a tenth of
// the client's CPU. Two calls in flight would overlap the two parts but
// halve the calls: two calls of 4 messages cost Redis about 77,500
// more than one of 8, a third more, which eats the overlap.
//
// A CPU profile of bench EnqueueConcurrent/G=8 (11 runs of 200,000
// messages, 7.7-7.9 a call, 16.3 s of samples) bears that out: the
// call's write 23.6% (loopback TCP, where the kernel also wakes Redis),
// its read 8.5%, epoll 8.8%, the wake-up of the idle P by the first
// answer (runtime.wakep in the channel send) 10.4% and that M's going
// back to sleep 5.3%, waking sysmon on entering a syscall 4.4% (it
// sleeps whenever both Ps wait for Redis), settle's yields 2.8%;
// go-redis's pool Get and Put (a health-check syscall each Get) 6.3%,
// drawing ids 3.1%, all allocation 3.4%; the flat time of this
// package's functions 4.1%, of go-redis's 4.5%. Tried and dropped, as
// not moving the client's CPU a message beyond the runs' noise
// (alternating runs, 9.3-10.4 µs either way): settle stopping once as
// many joined as were answered (2.15 -> 1.18 yields a call, the second
// one cheap: nothing else runnable), a plain receive rather than a
// select for a caller whose context never ends, and a sticky
// connection (redis.Conn) for the group, which takes the pool's
// 6 points out of the profile and 0.4 allocations a message but not
// the µs, and would lose go-redis's retry on a fresh connection.
//
// Hence overlapAt: a second call goes only when that many wait, more than
// can at G=8, so that G=1 and G=8 run exactly as with one call in flight.
// At G=64 a call's fixed cost is spread over 30 messages or more, and two
// in flight (7,994 of 8,082 calls of a run were taken with the other run
// going) took 31 messages a call rather than 46, and on the shared
// 2-core machine when the other helpers left it about idle (load average
// 2, go test -bench EnqueueConcurrent/G=64, 300,000 messages, 32 runs
// alternating with the one-call code): 1.28x the msgs/s (1.11x-1.68x,
// 24 runs: 156,800 against 122,600) and 1.34x (1.19x-1.42x, 8 runs),
// with the client's CPU a message 0.95x and Redis's 0.93x (3.7 and 5.2
// µs). Under their load (load average 4-6) it was a wash: 0.99x (0.67x-
// 1.46x, 38 runs), the overlap wanting CPU that was not there. bench
// producer-64 (-quick -n 20000 -runs 7, against the one-call code as
// mq-base): 1.09x (0.98x-1.67x) at load average 2, p99 1.11x, Redis CPU
// a message 1.00x, its commands (those the scripts run included) 1.65x;
// 1.00x (0.69x-1.49x, 36 runs in four invocations) under load; on the
// machine left idle, five invocations of 9 runs of 50,000 messages:
// 1.07x-1.18x, G=1 and G=8 1.00x-1.05x (README).

// Bounds of one coalesced script call: as many messages as an EnqueueMany
// call takes, and no more than about a megabyte of content, so that one
// call holds Redis for well under a millisecond.
const (
	coalesceMax   = enqueueBatch
	coalesceBytes = 1 << 20
)

// enqueueGroup holds the enqueue calls to one queue that wait for the
// call in flight.
type enqueueGroup struct {
	mu sync.Mutex
	// runs is how many script calls of this queue's group are in flight
	// or about to be: 0, 1, or 2 while enough wait (overlapAt).
	runs    int
	waiting []*enqueueWaiter
	// spare holds waiters whose callers took their answer, with their
	// channels, for calls to come (at most coalesceMax): a waiter and its
	// channel are three allocations a message otherwise.
	spare []*enqueueWaiter
}

// enqueueWaiter is one Enqueue call waiting in a group.
type enqueueWaiter struct {
	ctx  context.Context
	msg  protocol.EnqueueMessage
	done chan enqueueReply // buffered: the runner never blocks on it
}

// enqueueReply is the answer to one waiting call.
type enqueueReply struct {
	code protocol.Code
	err  error
}

// group returns the enqueue group of queue q.
func (c *Client) group(q string) *enqueueGroup {
	if g, ok := c.groups.Load(q); ok {
		return g.(*enqueueGroup)
	}
	g, _ := c.groups.LoadOrStore(q, &enqueueGroup{})
	return g.(*enqueueGroup)
}

// enqueueCoalesced enqueues m to queue with the other calls in flight, and
// answers the script's code for m, or the error of the call (from Redis or
// from ctx).
func (c *Client) enqueueCoalesced(ctx context.Context, queue string, m protocol.EnqueueMessage) (protocol.Code, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	g := c.group(queue)
	g.mu.Lock()
	if g.runs == 0 {
		// Nothing in flight: go at once, on this goroutine, alone.
		g.runs = 1
		g.mu.Unlock()
		code, err := c.enqueueAlone(ctx, queue, m)
		c.release(queue, g)
		return code, err
	}
	w := g.waiter(ctx, m)
	g.waiting = append(g.waiting, w)
	second := g.runs == 1 && len(g.waiting) >= overlapAt
	if second {
		g.runs = 2
	}
	g.mu.Unlock()
	if second {
		// Enough wait for a call of their own beside the one in flight.
		go c.drain(queue, g)
	}

	select {
	case r := <-w.done:
		g.reuse(w)
		return r.code, r.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, o := range g.waiting {
		if o == w { // not sent: nothing of it will ever be written
			g.waiting = append(g.waiting[:i], g.waiting[i+1:]...)
			break
		}
	}
	g.mu.Unlock()
	select {
	case r := <-w.done: // answered just in time
		g.reuse(w)
		return r.code, r.err
	default:
		// Its answer may still come: w is left to the runner, not reused.
		return "", ctx.Err()
	}
}

// waiter returns a waiter for m, a spare one if there is one. g.mu is
// held.
func (g *enqueueGroup) waiter(ctx context.Context, m protocol.EnqueueMessage) *enqueueWaiter {
	var w *enqueueWaiter
	if n := len(g.spare); n > 0 {
		w, g.spare[n-1] = g.spare[n-1], nil
		g.spare = g.spare[:n-1]
	} else {
		w = &enqueueWaiter{done: make(chan enqueueReply, 1)}
	}
	w.ctx, w.msg = ctx, m
	return w
}

// reuse keeps w, whose caller took its answer, for a later call. Only
// that caller may give it back, and only then: the runner sends nothing
// more to a waiter it answered and no longer reads it, while a waiter not
// answered yet (its caller gave up) may still get its answer.
func (g *enqueueGroup) reuse(w *enqueueWaiter) {
	w.ctx, w.msg = nil, protocol.EnqueueMessage{}
	g.mu.Lock()
	if len(g.spare) < coalesceMax {
		g.spare = append(g.spare, w)
	}
	g.mu.Unlock()
}

// enqueueAlone runs one script call for m alone, by ctx's deadline. A
// message whose id the client drew has that id as the call's token
// (protocol.EnqueueCall.Token): none is drawn for it.
func (c *Client) enqueueAlone(ctx context.Context, queue string, m protocol.EnqueueMessage) (protocol.Code, error) {
	// The call's Sends and its message, in one allocation.
	one := &struct {
		sends protocol.Sends
		msgs  [1]protocol.EnqueueMessage
	}{msgs: [1]protocol.EnqueueMessage{m}}
	call := protocol.EnqueueCall{Sends: &one.sends, Keep: c.receiptTTL, IndexOnly: c.cfg.NoCarmineWorkers,
		Messages: one.msgs[:], Backlogs: &c.backlogs}
	if !m.FreshID {
		call.Token = randomID()
	}
	var a protocol.EnqueueAnswer
	if c.direct(ctx) {
		// within's case of a call on this goroutine, without its closure
		// (an allocation a call).
		a = protocol.Enqueue(ctx, c.rdb, c.keys(queue), call)
	} else {
		var err error
		a, err = within(c, ctx, func(ctx context.Context) (protocol.EnqueueAnswer, error) {
			a := protocol.Enqueue(ctx, c.rdb, c.keys(queue), call)
			return a, a.Err
		})
		if err != nil {
			return "", err
		}
	}
	if a.Err != nil {
		return "", a.Err
	}
	return a.Codes[0], nil
}

// release ends the call in flight of an Enqueue that went alone: unless
// it stops there (stop), one goroutine runs the waiting calls.
func (c *Client) release(queue string, g *enqueueGroup) {
	g.mu.Lock()
	stop := g.stop()
	g.mu.Unlock()
	if !stop {
		go c.drain(queue, g)
	}
}

// stop tells whether a run of the group's calls whose call returned ends
// there, and if so no longer counts it in g.runs: when nobody waits, or
// when the other call in flight will take those waiting, too few for a
// call of their own (overlapAt). g.mu is held.
func (g *enqueueGroup) stop() bool {
	if len(g.waiting) == 0 || g.runs > 1 && len(g.waiting) < overlapAt {
		g.runs--
		return true
	}
	return false
}

// drain runs the group's waiting calls, as many as a script call takes at
// a time, until it stops (stop).
func (c *Client) drain(queue string, g *enqueueGroup) {
	for {
		// The callers just answered are runnable, most of them on this
		// goroutine's P, and many call again at once: let them run
		// before taking the next call's messages, so that their next
		// calls go in it with those that waited, rather than the callers
		// splitting into two halves that take turns, each in calls of
		// half the size (more script calls for as many messages). When
		// nobody waits even then, the group is idle.
		g.settle()
		g.mu.Lock()
		g.prune()
		if g.stop() {
			g.mu.Unlock()
			return
		}
		batch := g.take()
		g.mu.Unlock()
		c.runBatch(queue, batch)
	}
}

// prune takes the calls whose context ended out of the waiting list:
// their callers return by themselves. g.mu is held.
func (g *enqueueGroup) prune() {
	live := g.waiting[:0]
	for _, w := range g.waiting {
		if w.ctx.Err() == nil {
			live = append(live, w)
		}
	}
	clear(g.waiting[len(live):])
	g.waiting = live
}

// take removes and returns the waiting calls of the next script call, in
// arrival order, within coalesceMax and coalesceBytes (one at least: g
// has one waiting). g.mu is held.
func (g *enqueueGroup) take() []*enqueueWaiter {
	n, size := 0, 0
	for n < len(g.waiting) && n < coalesceMax {
		size += len(g.waiting[n].msg.Data) + len(g.waiting[n].msg.Metadata)
		if n > 0 && size > coalesceBytes {
			break
		}
		n++
	}
	batch := make([]*enqueueWaiter, n)
	copy(batch, g.waiting)
	rest := copy(g.waiting, g.waiting[n:])
	clear(g.waiting[rest:])
	g.waiting = g.waiting[:rest]
	return batch
}

// runBatch sends one script call for batch and answers each waiting call.
// The call runs by the latest deadline of its callers' contexts (none if
// one has none), never cancelled by one of them: each caller stops waiting
// by its own context.
func (c *Client) runBatch(queue string, batch []*enqueueWaiter) {
	call := c.enqueueCall(len(batch))
	call.Messages = call.Messages[:len(batch)]
	var latest time.Time
	bounded := true
	for i, w := range batch {
		call.Messages[i] = w.msg
		if d, ok := w.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(latest) {
			latest = d
		}
	}
	ctx := context.Background()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	a := protocol.Enqueue(ctx, c.rdb, c.keys(queue), call)
	for i, w := range batch {
		if a.Err != nil {
			w.done <- enqueueReply{err: a.Err}
		} else {
			w.done <- enqueueReply{code: a.Codes[i]}
		}
	}
}

// settle lets the callers just answered run until their next calls stop
// joining the waiting list: it yields, and again as long as the list grew
// since the last yield and is short of settleEnough, settleYields times at
// most. One yield let only part of them through (some run on another P,
// or later than this goroutine): with 64 callers, calls took about 41
// messages rather than 60 or more (go test -bench, one queue, 2 cores).
func (g *enqueueGroup) settle() {
	last := -1
	for range settleYields {
		runtime.Gosched()
		g.mu.Lock()
		n := len(g.waiting)
		g.mu.Unlock()
		if n == last || n >= settleEnough {
			return
		}
		last = n
	}
}

// settleYields bounds the yields of settle: a caller that is slow to call
// again waits for the call after, and those that waited do not wait long
// for it.
const settleYields = 4

// settleEnough is how many waiting calls end settle's yields at once:
// enough that a call's own cost is spread thin, and few enough that the
// callers still on their way at G=64 call again while the script call
// runs, rather than Redis waiting for all of them. Against going on to a
// full call (settle stopping only when the list stops growing): about 55
// messages a call at G=64 rather than 61, msgs/s within noise of it
// (1.05x against 1.07x of main's, go test -bench, 8 interleaved runs).
const settleEnough = 32

// overlapAt is how many waiting calls, while one script call of their
// group is in flight, go in a second call at once rather than wait for
// it to return. It is above the callers that can wait at G=8 (7 while the
// eighth is in flight), so that they wait as with one call in flight.
// At 24 G=64's calls took 41-43 messages, at 32 the second call was rare
// (53 a call); on the loaded machine neither did better than 16 (go test
// -bench, alternating runs: 24 at 0.94x-1.07x of the one-call code's in
// four sets of 6-12, 32 at 1.03x in one of 12).
const overlapAt = 16

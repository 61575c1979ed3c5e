package mq

import (
	"context"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Prefetching (WorkerConfig.Prefetch), in one place: a worker may hold
// limit() messages at once, its handlers' plus the prefetch while
// handlings are quick; reserve and finish keep the count of messages taken
// and not done with; a delivery that went stale on its way to a handler
// is given back (handling.go's giveBack, a fenced release in Lua); and
// while polls come back full, burstLoop keeps a second poll in flight.

// The default prefetch depth, and when prefetching is on.
const (
	defaultPrefetch      = 32
	prefetchMaxHandling  = 10 * time.Millisecond // mean handling time, lately
	prefetchMinLockTime  = 10 * time.Second
	queueSizeSampleEvery = 100 * time.Millisecond
	maxOutcomeDelay      = 2 * time.Millisecond // see reserve
	// minStaleWait is the least wait that makes a taken message stale:
	// with tiny lock times, a hand-off's own delay must not send every
	// message back.
	minStaleWait          = 10 * time.Millisecond
	handlingTimeSmoothing = 4 // weight 1/4 for each new handling time
)

// burstLoop is the second poll in flight of WorkerConfig.Prefetch: it
// polls only while the worker prefetches and polls come back full, so
// that Redis runs one poll while the worker hands out another's messages,
// and it never sleeps at the end of the queue.
func (w *Worker) burstLoop(ctx context.Context, deliveries chan delivery) {
	w.outbox.awoken()
	defer w.outbox.asleep()
	l := w.newPollLoop(deliveries)
	defer l.end()
	for w.awaitBusy(ctx) {
		w.stats.count(cBurstPolls)
		if _, ok := l.turn(ctx); !ok {
			return
		}
	}
}

// limit is how many messages the worker may hold at once: one per handler
// thread, plus the prefetch while handlings are quick.
func (w *Worker) limit() int64 {
	n := int64(w.cfg.HandlerThreads)
	if w.prefetching() {
		n += int64(w.cfg.Prefetch)
	}
	return n
}

// prefetching tells whether the worker takes messages beyond its handlers.
func (w *Worker) prefetching() bool {
	return w.cfg.Prefetch > 0 && w.cfg.Throttle == nil && w.cfg.LockTime >= prefetchMinLockTime &&
		time.Duration(w.handlingNS.Load()) < prefetchMaxHandling
}

// setBusy records whether the last poll came back full, and wakes the
// burst loop when it did.
func (w *Worker) setBusy(full bool) {
	w.busy.Store(full)
	if full {
		select {
		case w.busySignal <- struct{}{}:
		default:
		}
	}
}

// awaitBusy waits, counted as asleep by the outbox, until polls come back
// full while the worker prefetches. It answers false when ctx ended.
func (w *Worker) awaitBusy(ctx context.Context) bool {
	if w.busy.Load() && w.prefetching() {
		return true
	}
	w.outbox.asleep()
	defer w.outbox.awoken()
	for {
		select {
		case <-w.busySignal:
		case <-ctx.Done():
			return false
		}
		if w.busy.Load() && w.prefetching() {
			return true
		}
	}
}

// reserve waits until there is room for messages and takes all of it. It
// answers how many messages the next poll may take, 0 when ctx ended.
// With nothing waiting for a handler, any room will do; otherwise it waits
// for half the limit, so that a poll takes many messages at once. Outcomes
// handed in meanwhile ride on that poll; should the wait outlast
// maxOutcomeDelay, the loop counts as asleep and the flusher records them,
// so that slow handlings never hold an outcome back (and past its lock).
func (w *Worker) reserve(ctx context.Context, deliveries chan delivery) int {
	var timer *time.Timer
	var late <-chan time.Time
	parked := false // counted as asleep by the outbox
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if parked {
			w.outbox.awoken()
		}
	}()
	for {
		limit := w.limit()
		taken := w.taken.Load()
		room := limit - taken
		if room > 0 && (len(deliveries) == 0 || 2*room >= limit) {
			if w.taken.CompareAndSwap(taken, limit) {
				return int(room)
			}
			continue
		}
		if timer == nil {
			timer = time.NewTimer(maxOutcomeDelay)
			late = timer.C
		}
		select {
		case <-w.freed:
		case <-late:
			late, parked = nil, true
			w.outbox.asleep()
		case <-ctx.Done():
			return 0
		}
	}
}

// finish accounts for n messages taken that are done with: handled, given
// back, or not handed out after all.
func (w *Worker) finish(n int) {
	if n <= 0 {
		return
	}
	w.taken.Add(-int64(n))
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// delivery is a message taken by a poll, on its way to a handler.
type delivery struct {
	step      protocol.Step
	queueSize int64
	sent      time.Time // when the poll was sent: the lock runs out no sooner than its lock time after
	received  time.Time // when the poll's reply came
}

// stale tells whether a delivery should go back rather than to a handler:
// it waited in the worker over a quarter of its lock time (and
// minStaleWait), or the poll took so long that under a quarter of the lock
// time is left (the handler would soon have its context ended).
func (d *delivery) stale() bool {
	lt := d.step.LockTime
	return time.Since(d.received) > max(lt/4, minStaleWait) || time.Since(d.sent) > lt-lt/4
}

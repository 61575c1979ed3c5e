package mq

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// maxErrorBackoff caps the pause after consecutive loop errors, which
// Carmine lets grow to many minutes: a worker notices a returning Redis
// within about a second. errorLogEvery spaces the warnings meanwhile.
const (
	maxErrorBackoff = time.Second
	errorLogEvery   = 30 * time.Second
)

// Prefetching (WorkerConfig.Prefetch): the default depth, and when it is on.
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

// loop is one polling loop. Each turn records the outcomes handed in since
// the last and takes as many messages as there is room for, in one script
// call, and hands them to the handlers through deliveries.
//
// The burst loop polls only while the worker is prefetching and polls come
// back full, and never sleeps at the end of the queue: it is the second
// poll in flight of WorkerConfig.Prefetch.
func (w *Worker) loop(ctx context.Context, i int, burst bool, deliveries chan delivery) {
	defer w.loops.Done()
	w.outbox.awoken()
	defer w.outbox.asleep()
	if i > 0 && !burst && !w.pause(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond)))) {
		return
	}
	if i == 0 && !burst {
		// Settings under which Redis may delete queue keys without an
		// error are worth a warning at every start.
		for _, warning := range w.c.checkRedis(ctx) {
			w.log.Warn("mq: " + warning)
		}
	}
	var sleeps [5]time.Duration
	for j := range sleeps {
		sleeps[j] = max(minEndOfQueueSleep, w.cfg.EndOfQueueBackoff(int64(j)))
	}
	p := newPoller(w.c, w.queue)
	defer func() {
		if !p.settled() {
			w.outbox.adopt(p)
		}
	}()
	errs := 0
	var failingSince, loggedAt time.Time
	var queueSize int64
	var sizeSeen time.Time
	for {
		if burst && !w.awaitBusy(ctx) {
			return
		}
		n := w.reserve(ctx, deliveries)
		if n == 0 {
			return
		}
		batch := w.outbox.take(p.room())
		wantSize := w.cfg.Throttle != nil || time.Since(sizeSeen) >= queueSizeSampleEvery
		if burst {
			w.stats.count(CountBurstPolls)
		}
		reply, resolved, err := p.call(ctx, protocol.PollArgs{
			LockTime:   w.cfg.LockTime,
			Sleeps:     sleeps,
			MaxSteps:   4*n + 16,
			MaxHandles: n,
			WantSize:   wantSize,
		}, batch)
		received := time.Now()
		if err != nil {
			w.finish(n)
			if ctx.Err() != nil {
				return
			}
			errs++
			w.stats.count(CountPollError)
			factor := 200 * time.Millisecond
			if w.cfg.Throttle != nil {
				factor = cmpOr(w.cfg.Throttle(queueSize), factor)
			}
			d := ExpBackoff(min(12, errs), 0, maxErrorBackoff, factor)
			if errs == 1 {
				failingSince, loggedAt = received, received
				w.log.Warn("mq: poll failed", slog.Any("error", err), slog.Duration("retry_in", d))
			} else if received.Sub(loggedAt) >= errorLogEvery {
				loggedAt = received
				w.log.Warn("mq: polls still failing", slog.Any("error", err),
					slog.Int("consecutive_errors", errs), slog.Duration("for", received.Sub(failingSince)))
			}
			if !w.pause(ctx, d) {
				return
			}
			continue
		}
		w.outbox.done(resolved, reply.Recorded)
		if errs > 0 {
			w.log.Info("mq: poll recovered", slog.Int("after_errors", errs),
				slog.Duration("after", received.Sub(failingSince)))
			errs = 0
		}
		if reply.QueueSize >= 0 {
			queueSize, sizeSeen = reply.QueueSize, received
			w.stats.queueSize.Add(float64(queueSize))
		}

		handled, ndry := 0, int64(0)
		var sleep *protocol.Step
		for k := range reply.Steps {
			s := &reply.Steps[k]
			switch s.Kind {
			case protocol.StepHandle:
				handled++
				// Never blocks: deliveries has room for every message
				// that may be taken.
				deliveries <- delivery{step: *s, queueSize: queueSize, sent: reply.Sent, received: received}
			case protocol.StepSleep:
				sleep, ndry = s, s.NDryRuns
			case protocol.StepSkip:
				w.stats.countSkip(s.Reason)
			}
		}
		w.finish(n - handled)
		w.setBusy(sleep == nil && handled == n)
		w.cfg.Monitor(ctx, MonitorInfo{Queue: w.queue, QueueSize: queueSize,
			NDryRuns: ndry, Handled: handled, Slept: sleep != nil, Logger: w.log})

		switch {
		case sleep != nil && !burst: // the burst loop waits for busy instead
			w.stats.count(CountEndOfCircle)
			w.outbox.asleep()
			w.sleep(ctx, sleep)
			w.outbox.awoken()
		case w.cfg.Throttle != nil:
			w.pause(ctx, w.cfg.Throttle(queueSize))
		}
		if ctx.Err() != nil {
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
	return w.cfg.Prefetch > 0 && w.cfg.LockTime >= prefetchMinLockTime &&
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

// pause sleeps for d or until ctx ends, handing outcomes to the flusher
// meanwhile, and answers whether it slept the whole time.
func (w *Worker) pause(ctx context.Context, d time.Duration) bool {
	w.outbox.asleep()
	defer w.outbox.awoken()
	return sleepCtx(ctx, d)
}

func cmpOr(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
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

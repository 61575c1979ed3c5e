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

// pollingLoop is one of the worker's polling loops (WorkerThreads of
// them): it polls, sleeps at the end of the queue until an enqueue wakes
// it, and keeps to the Throttle.
func (w *Worker) pollingLoop(ctx context.Context, i int, deliveries chan delivery) {
	w.outbox.awoken()
	defer w.outbox.asleep()
	if i > 0 && !w.pause(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond)))) {
		return // loops after the first start spread out
	}
	if i == 0 {
		// Settings under which Redis may delete queue keys without an
		// error are worth a warning at every start.
		for _, warning := range w.c.checkRedis(ctx) {
			w.log.Warn("mq: " + warning)
		}
	}
	l := w.newPollLoop(deliveries)
	defer l.end()
	for {
		// Taken before the poll: an outcome the flusher records from now
		// on, while this loop sleeps, wakes it.
		alarm := w.alarm.wait()
		sleep, ok := l.turn(ctx)
		if !ok {
			return
		}
		switch {
		case sleep != nil:
			w.outbox.asleep()
			w.sleep(ctx, sleep, alarm, w.asleep)
			w.outbox.awoken()
		case w.cfg.Throttle != nil && l.errs == 0: // a failed poll paused already
			w.pause(ctx, w.cfg.Throttle(int(l.queueSize)))
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// pollLoop is what one loop keeps from poll to poll.
type pollLoop struct {
	w          *Worker
	p          *poller
	deliveries chan delivery
	sleeps     [5]time.Duration // end-of-queue sleeps by dry laps, floored

	queueSize int64     // as the last poll that asked for it saw it
	sizeSeen  time.Time // when it was asked for

	errs                   int // polls failed in a row
	failingSince, loggedAt time.Time
}

func (w *Worker) newPollLoop(deliveries chan delivery) *pollLoop {
	l := &pollLoop{w: w, p: newPoller(w.pollQueue), deliveries: deliveries}
	for j := range l.sleeps {
		l.sleeps[j] = max(minEndOfQueueSleep, w.cfg.EndOfQueueBackoff(j))
	}
	return l
}

// end hands the loop's poller to the outbox when its last call went
// unanswered: the flusher settles it.
func (l *pollLoop) end() {
	if !l.p.settled() {
		l.w.outbox.adopt(l.p)
	}
}

// turn is one poll: it waits for room, records the outcomes handed in
// since the last poll and takes as many messages as there is room for, in
// one script call, and hands them to the handlers. It answers the poll's
// sleep step when the poll reached the end of the queue, and false when
// ctx ended. After a failed poll it pauses, by an exponential backoff.
func (l *pollLoop) turn(ctx context.Context) (*protocol.Step, bool) {
	w := l.w
	n := w.reserve(ctx, l.deliveries)
	if n == 0 {
		return nil, false
	}
	if w.cfg.Throttle != nil && n > 1 {
		// Throttled, a loop takes one message per poll, as Carmine's
		// does, so that the pause paces messages.
		w.finish(n - 1)
		n = 1
	}
	batch := w.outbox.take(l.p.room())
	wantSize := w.cfg.Throttle != nil || time.Since(l.sizeSeen) >= queueSizeSampleEvery
	reply, resolved, err := l.p.call(ctx, protocol.PollArgs{
		LockTime:   w.cfg.LockTime,
		Sleeps:     l.sleeps,
		MaxSteps:   4*n + 16,
		MaxHandles: n,
		WantSize:   wantSize,
	}, batch)
	received := time.Now()
	if err != nil {
		w.finish(n)
		if ctx.Err() != nil {
			return nil, false
		}
		return nil, l.failed(ctx, err, received)
	}
	w.outbox.done(resolved, reply.Recorded)
	if l.errs > 0 {
		w.log.Info("mq: poll recovered", slog.Int("after_errors", l.errs),
			slog.Duration("after", received.Sub(l.failingSince)))
		l.errs = 0
	}
	if reply.QueueSize >= 0 {
		l.queueSize, l.sizeSeen = reply.QueueSize, received
		w.stats.queueSize.Add(float64(l.queueSize))
	}

	handled, ndry := 0, int64(0)
	var sleep *protocol.Step
	for k := range reply.Steps {
		s := &reply.Steps[k]
		switch s.Kind {
		case protocol.StepHandle:
			handled++
			// Never blocks: deliveries has room for every message that
			// may be taken.
			l.deliveries <- delivery{step: *s, queueSize: l.queueSize, sent: reply.Sent, received: received}
		case protocol.StepSleep:
			sleep, ndry = s, s.NDryRuns
		case protocol.StepSkip:
			w.stats.countSkip(s.Reason)
		}
	}
	w.finish(n - handled)
	w.setBusy(sleep == nil && handled == n)
	w.cfg.Monitor(ctx, MonitorInfo{Queue: w.queue, QueueSize: l.queueSize,
		NDryRuns: ndry, Handled: handled, Slept: sleep != nil, Logger: w.log})
	return sleep, true
}

// failed counts and logs a failed poll (once, then every errorLogEvery
// while polls go on failing), and pauses before the next. It answers false
// when ctx ended meanwhile.
func (l *pollLoop) failed(ctx context.Context, err error, at time.Time) bool {
	w := l.w
	l.errs++
	w.stats.count(cPollErrors)
	w.subs.emit(Event{Kind: EventPollFailed, Queue: w.queue})
	factor := 200 * time.Millisecond
	if w.cfg.Throttle != nil {
		factor = positiveOr(w.cfg.Throttle(int(l.queueSize)), factor)
	}
	d := ExpBackoff(min(12, l.errs), 0, maxErrorBackoff, factor)
	if l.errs == 1 {
		l.failingSince, l.loggedAt = at, at
		w.log.Warn("mq: poll failed", slog.Any("error", err), slog.Duration("retry_in", d))
	} else if at.Sub(l.loggedAt) >= errorLogEvery {
		l.loggedAt = at
		w.log.Warn("mq: polls still failing", slog.Any("error", err),
			slog.Int("consecutive_errors", l.errs), slog.Duration("for", at.Sub(l.failingSince)))
	}
	return w.pause(ctx, d)
}

// pause sleeps for d or until ctx ends, handing outcomes to the flusher
// meanwhile, and answers whether it slept the whole time.
func (w *Worker) pause(ctx context.Context, d time.Duration) bool {
	w.outbox.asleep()
	defer w.outbox.awoken()
	return sleepCtx(ctx, d)
}

// positiveOr answers d when it is positive, else fallback.
func positiveOr(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

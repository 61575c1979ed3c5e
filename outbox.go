package mq

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// maxOutcomesPerCall bounds the outcomes recorded by one script call.
const maxOutcomesPerCall = 256

// pendingOutcome is a handler's outcome waiting to be recorded.
type pendingOutcome struct {
	protocol.Completion
	attempt int64 // for the logs
}

// outbox holds the outcomes of finished handlings until they are recorded.
//
// A polling loop that is awake records them in its next poll call, so that
// one round trip both records outcomes and takes new messages; a handler
// frees its room right after handing in its outcome, which wakes a loop
// waiting for room. While every loop sleeps (at the end of the queue, after
// errors, or waiting for room longer than maxOutcomeDelay), the flusher
// goroutine records them instead, so that an outcome is never held back.
type outbox struct {
	w *Worker

	mu      sync.Mutex
	pending []pendingOutcome
	taken   int       // taken by a loop or the flusher, not yet resolved
	orphans []*poller // pollers of loops that ended with a call unanswered
	awake   int       // polling loops not asleep
	closed  bool      // no flusher runs: outcomes handed in now are abandoned
	kick    chan struct{}
	settled chan struct{} // closed and renewed: signals pending+taken reaching 0
}

func newOutbox(w *Worker) *outbox {
	return &outbox{w: w, kick: make(chan struct{}, 1), settled: make(chan struct{})}
}

// add hands in one outcome.
func (o *outbox) add(p pendingOutcome) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.w.stats.count(CountAbandoned)
		o.w.messageLog(p.ID, p.attempt).Warn("mq: outcome handed in after the worker closed; the message stays locked until its lock expires")
		return
	}
	o.pending = append(o.pending, p)
	if o.awake == 0 {
		o.signal()
	}
	o.mu.Unlock()
}

// signal wakes the flusher. o.mu is held.
func (o *outbox) signal() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// take removes up to n outcomes for recording.
func (o *outbox) take(n int) []pendingOutcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(len(o.pending), n)
	if n == 0 {
		return nil
	}
	batch := make([]pendingOutcome, n)
	copy(batch, o.pending)
	o.pending = append(o.pending[:0], o.pending[n:]...)
	o.taken += n
	return batch
}

// done resolves outcomes taken with take: recorded holds the script's
// answers. (Outcomes of a call that failed are not put back: they stay
// with the poller that sent them, which sends them again; see poller.)
func (o *outbox) done(batch []pendingOutcome, recorded []bool) {
	if len(batch) == 0 {
		return
	}
	for i, p := range batch {
		if !recorded[i] && p.Outcome != protocol.OutcomeRelease {
			o.w.stats.count(CountLockLost)
			o.w.messageLog(p.ID, p.attempt).Warn("mq: lock lost before the outcome was recorded; it was not", slog.String("outcome", string(p.Outcome)))
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.taken -= len(batch)
	o.checkSettled()
}

// adopt takes over a poller whose loop ended before its last call was
// answered: the flusher makes the call that settles it.
func (o *outbox) adopt(p *poller) {
	o.mu.Lock()
	o.orphans = append(o.orphans, p)
	o.signal()
	o.mu.Unlock()
}

// takeOrphan removes one adopted poller, nil if none.
func (o *outbox) takeOrphan() *poller {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.orphans) == 0 {
		return nil
	}
	p := o.orphans[0]
	o.orphans = o.orphans[1:]
	return p
}

// checkSettled signals waiters when nothing is left to record. o.mu is
// held.
func (o *outbox) checkSettled() {
	if len(o.pending) == 0 && o.taken == 0 {
		close(o.settled)
		o.settled = make(chan struct{})
	}
}

// asleep and awoken bracket a polling loop's sleeps.
func (o *outbox) asleep() {
	o.mu.Lock()
	o.awake--
	if o.awake == 0 && len(o.pending) > 0 {
		o.signal()
	}
	o.mu.Unlock()
}

func (o *outbox) awoken() {
	o.mu.Lock()
	o.awake++
	o.mu.Unlock()
}

// wait returns once every outcome handed in has been recorded or
// abandoned, or when ctx ends.
func (o *outbox) wait(ctx context.Context) error {
	for {
		o.mu.Lock()
		if len(o.pending) == 0 && o.taken == 0 {
			o.mu.Unlock()
			return nil
		}
		settled := o.settled
		o.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush settles the adopted pollers and records outcomes until none are
// pending, with its own poller p, retrying while Redis fails, until killed
// ends; then it abandons what is left.
func (o *outbox) flush(killed context.Context, p *poller) {
	for errs := 0; ; {
		q := p
		if orphan := o.takeOrphan(); orphan != nil {
			q = orphan
		}
		var batch []pendingOutcome
		if q == p {
			batch = o.take(p.room())
			if len(batch) == 0 && p.settled() {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, resolved, err := q.call(ctx, protocol.PollArgs{}, batch)
		cancel()
		if err == nil {
			errs = 0
			o.done(resolved, r.Recorded)
			continue
		}
		if q != p {
			o.adopt(q) // try it again later
		}
		errs++
		d := ExpBackoff(min(12, errs), 0, maxErrorBackoff, 200*time.Millisecond)
		o.w.log.Warn("mq: recording outcomes failed", slog.Any("error", err),
			slog.Int("outcomes", len(q.inDoubt)), slog.Duration("retry_in", d))
		if !sleepCtx(killed, d) {
			o.abandonAll(p)
			return
		}
	}
}

// abandonAll gives up on every outcome not recorded: those pending, those
// in doubt with p and with the adopted pollers. Their messages stay locked
// until their locks expire, then are handled again.
func (o *outbox) abandonAll(p *poller) {
	for q := p; q != nil; q = o.takeOrphan() {
		o.abandon(q.inDoubt)
		q.inDoubt = nil
	}
	for b := o.take(maxOutcomesPerCall); len(b) > 0; b = o.take(maxOutcomesPerCall) {
		o.abandon(b)
	}
}

// abandon gives up on taken outcomes: their messages stay locked until
// their locks expire, then are handled again.
func (o *outbox) abandon(batch []pendingOutcome) {
	for _, p := range batch {
		o.w.stats.count(CountAbandoned)
		o.w.messageLog(p.ID, p.attempt).Warn("mq: outcome not recorded before the stop; the message stays locked until its lock expires",
			slog.String("outcome", string(p.Outcome)))
	}
	o.mu.Lock()
	o.taken -= len(batch)
	o.checkSettled()
	o.mu.Unlock()
}

// run is the flusher goroutine: it records outcomes while every loop
// sleeps, and once more when stop is closed, then returns. Outcomes handed
// in after that are abandoned.
func (o *outbox) run(killed context.Context, stop <-chan struct{}) {
	p := newPoller(o.w.c, o.w.queue)
	for {
		select {
		case <-o.kick:
			o.flush(killed, p)
		case <-stop:
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			o.flush(killed, p)
			return
		}
	}
}

// open readies the outbox for a (re)started worker.
func (o *outbox) open() {
	o.mu.Lock()
	o.closed = false
	o.mu.Unlock()
}

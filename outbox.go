package mq

import (
	"context"
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
	failed  bool  // a retry or dead letter after the handler failed
}

// outcome names the outcome in the terms of the worker's counts, events
// and logs: what the retry policy made of the handler's answer.
func (p pendingOutcome) outcome() Outcome {
	if p.Outcome == protocol.OutcomeRelease {
		return outcomeReleased
	}
	return handlingOutcome(p.Completion, p.failed)
}

// outcomeReleased names, in logs only, a message given back unhandled: not
// a handling, so not among the Outcomes.
const outcomeReleased Outcome = "released"

// outbox holds the outcomes of finished handlings until they are recorded.
//
// A polling loop that is awake records them in its next poll call, so that
// one round trip both records outcomes and takes new messages; a handler
// frees its room right after handing in its outcome, which wakes a loop
// waiting for room. While every loop sleeps (at the end of the queue, after
// errors, or waiting for room longer than maxOutcomeDelay), the flusher
// goroutine records them instead, so that an outcome is never held back.
type outbox struct {
	send   pollFunc     // for the flusher's calls
	events outboxEvents // what the outbox tells its worker

	mu      sync.Mutex
	pending []pendingOutcome
	taken   int       // taken by a loop or the flusher, not yet resolved
	orphans []*poller // pollers of loops that ended with a call unanswered
	awake   int       // polling loops not asleep
	closed  bool      // no flusher runs: outcomes handed in now are abandoned
	cut     bool      // closed by a stop cut short, which counted what was left
	kick    chan struct{}
}

// outboxEvents is what an outbox tells its worker, for its stats and logs.
type outboxEvents interface {
	// recorded: a handling's outcome was recorded.
	recorded(p pendingOutcome)
	// lockLost: an outcome was not recorded, its lock lost meanwhile.
	lockLost(p pendingOutcome)
	// abandoned: outcomes (n of them; ps those whose ids are known) are
	// given up on, their messages left locked until the locks expire.
	abandoned(ps []pendingOutcome, n int, why string)
	// recordFailed: a call that records outcomes failed; the flusher tries
	// again in retryIn.
	recordFailed(err error, outcomes int, retryIn time.Duration)
	// readied: the flusher, which records while every polling loop
	// sleeps, recorded an outcome that made a message ready, or due
	// sooner than the loops' sleeps may end.
	readied()
}

// readies tells whether recorded outcomes of batch include one that
// makes its message ready or due: a retry or a release.
func readies(batch []pendingOutcome, recorded []bool) bool {
	for i, p := range batch {
		if recorded[i] && (p.Outcome == protocol.OutcomeRetry || p.Outcome == protocol.OutcomeRelease) {
			return true
		}
	}
	return false
}

func newOutbox(send pollFunc, events outboxEvents) *outbox {
	return &outbox{send: send, events: events, kick: make(chan struct{}, 1)}
}

// add hands in one outcome.
func (o *outbox) add(p pendingOutcome) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.events.abandoned([]pendingOutcome{p}, 1, "handed in after the worker closed")
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
// answers, which the events hear of (releases aside). (Outcomes of a call
// that failed are not put back: they stay with the poller that sent them,
// which sends them again; see poller.)
func (o *outbox) done(batch []pendingOutcome, recorded []bool) {
	if len(batch) == 0 {
		return
	}
	o.mu.Lock()
	cut := o.cut
	o.mu.Unlock()
	for i, p := range batch {
		switch {
		case cut || p.Outcome == protocol.OutcomeRelease:
			// counted by closeNow, or at the give-back
		case recorded[i]:
			o.events.recorded(p)
		default:
			o.events.lockLost(p)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.cut {
		o.taken -= len(batch)
	}
}

// adopt takes over a poller whose loop ended before its last call was
// answered: the flusher makes the call that settles it.
func (o *outbox) adopt(p *poller) {
	o.mu.Lock()
	if o.cut {
		p.inDoubt = nil // counted as abandoned by closeNow
	}
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
			if readies(resolved, r.Recorded) {
				o.events.readied()
			}
			continue
		}
		if q != p {
			o.adopt(q) // try it again later
		}
		errs++
		d := ExpBackoff(min(12, errs), 0, maxErrorBackoff, 200*time.Millisecond)
		o.events.recordFailed(err, len(q.inDoubt), d)
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
	o.mu.Lock()
	cut := o.cut // if so, closeNow counted them
	if !cut {
		o.taken -= len(batch)
	}
	o.mu.Unlock()
	if !cut && len(batch) > 0 {
		o.events.abandoned(batch, len(batch), "not recorded before the stop")
	}
}

// run is the flusher goroutine: it records outcomes while every loop
// sleeps, and once more when stop is closed, then returns. Outcomes handed
// in after that are abandoned.
func (o *outbox) run(killed context.Context, stop <-chan struct{}) {
	p := newPoller(o.send)
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

// closeNow closes the outbox for a stop cut short: every outcome not
// known to be recorded (pending, or taken by a call not answered) is
// abandoned and counted now, once; what calls still in flight answer
// later is not counted again. Adopted pollers are still settled by the
// next run's flusher, which gives back what their calls handed out. It
// answers how many outcomes it abandoned.
func (o *outbox) closeNow() int {
	o.mu.Lock()
	if o.cut {
		o.mu.Unlock()
		return 0
	}
	pending, n := o.pending, len(o.pending)+o.taken
	for _, q := range o.orphans {
		q.inDoubt = nil
	}
	o.pending, o.taken = nil, 0
	o.closed, o.cut = true, true
	o.mu.Unlock()
	if n > 0 {
		o.events.abandoned(pending, n, "not recorded before the stop")
	}
	return n
}

// open readies the outbox for a (re)started worker, once the goroutines
// of the last run have returned.
func (o *outbox) open() {
	o.mu.Lock()
	o.closed, o.cut = false, false
	o.mu.Unlock()
}

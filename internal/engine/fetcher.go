package engine

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// The fetcher's timings.
const (
	// errorLogEvery spaces the warnings while polls go on failing.
	errorLogEvery = 30 * time.Second
	// queueSizeSampleEvery is how often at most a poll asks for the queue
	// size, unthrottled.
	queueSizeSampleEvery = 100 * time.Millisecond
	// maxOutcomeDelay is how long a loop waiting for room may hold the
	// outcomes handed in meanwhile before the completer's flusher records
	// them (see reserve).
	maxOutcomeDelay = 2 * time.Millisecond
	// sleepChunk is the longest single blocking call of an end-of-queue
	// sleep a worker sleeps on its own connection. Between calls the
	// worker checks whether it is stopping and whether messages are
	// ready, so that Stop is prompt and a wake-up missed in a race is not
	// missed for long.
	sleepChunk = time.Second
	// MinEndOfQueueSleep is the shortest end-of-queue sleep, whatever
	// EndOfQueueBackoff says, so that an idle worker never polls in a hot
	// loop.
	MinEndOfQueueSleep = 10 * time.Millisecond
)

// SleepStore is what the fetcher's sleeps need of Redis beyond the Store
// (docs/protocol.md §5), bound to the queue's keys.
type SleepStore interface {
	Store
	// SleepLists answers the isleep lists a sleep step blocks on.
	SleepLists(s *protocol.Step) (from, to string)
	// BlockingMove blocks on from for up to d and answers whether an
	// enqueue moved the sentinel there (it is moved on to to).
	BlockingMove(ctx context.Context, from, to string, d time.Duration) (bool, error)
	// HasReady tells whether messages are ready to be taken.
	HasReady(ctx context.Context) (bool, error)
	// Nudge moves the sleep sentinel from one list to the other.
	Nudge(ctx context.Context, from, to string) error
}

// PollInfo is what a fetcher tells of every poll Redis answered.
type PollInfo struct {
	QueueSize int64 // as the last poll that asked for it saw it
	NDryRuns  int64 // dry laps in a row, as of the last end-of-queue sleep
	Handled   int   // messages the poll handed out
	Slept     bool  // the poll reached the end of the queue
}

// FetcherEvents is what a fetcher tells its worker, for its monitor,
// stats, subscribers and logs.
type FetcherEvents interface {
	// Polled: a poll came back (the worker's monitor).
	Polled(ctx context.Context, info PollInfo)
	// QueueSize: a poll sampled the queue size.
	QueueSize(n int64)
	// Skipped: a poll's step handed nothing out, for reason.
	Skipped(reason string)
	// PollFailed: a poll failed.
	PollFailed()
	// BurstPoll: the burst loop polled.
	BurstPoll()
	// Asleep: a polling loop is blocked at the end of the queue.
	Asleep()
}

// Outcomes is all the fetcher needs of the completer (a *Completer): it
// pulls outcomes to carry on its polls and reports what the calls did, and
// tells when its loops sleep, so that the completer's flusher records
// meanwhile. The completer never calls the fetcher: what it records while
// the loops sleep rings Readied.
type Outcomes interface {
	// Take removes up to n outcomes, to carry on a poll.
	Take(n int) []Pending
	// Done reports what a poll recorded of the outcomes it carried.
	Done(batch []Pending, recorded []bool)
	// Adopt hands over a poller whose last call went unanswered.
	Adopt(p *Poller)
	// Asleep and Awoken bracket a loop's sleeps and waits.
	Asleep()
	Awoken()
	// Readied answers a channel closed once the completer recorded an
	// outcome that makes a message ready or due sooner.
	Readied() <-chan struct{}
}

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	WorkerThreads int
	// Burst turns on the burst loop: a second poll in flight while polls
	// come back full and the worker prefetches.
	Burst             bool
	LockTime          time.Duration
	Throttle          func(queueSize int) time.Duration // nil: none
	EndOfQueueBackoff func(dryLaps int) time.Duration

	Store     SleepStore
	Hub       *Hub // the client's sleep hub; nil: none
	Room      *Room
	Completer Outcomes // whose outcomes ride on the polls
	Events    FetcherEvents
	Log       *slog.Logger
	// BeforeFirstPoll, if set, runs on the first polling loop before its
	// first poll (the worker's check of Redis's settings).
	BeforeFirstPoll func(ctx context.Context)
	// Lane, when set, goes with every delivery, to an executor shared
	// with other queues' fetchers (Pool); its Room is Room.
	Lane *Lane
	// SleepChunk is the longest single blocking call of a sleep on the
	// worker's own connection; 0 for sleepChunk, the default (other
	// values are for tests, e.g. one that must see the sleep woken by
	// the sentinel, not by the look at mids-ready between calls).
	SleepChunk time.Duration
}

// Fetcher runs the polling loops of one run of a worker (WorkerThreads of
// them, and the burst loop): each takes room, polls, recording the
// outcomes the completer holds and taking messages, in one script call,
// hands the messages to the executor through the deliveries channel, and
// sleeps at the end of the queue until an enqueue, a due time or the
// completer's alarm wakes it.
type Fetcher struct {
	cfg FetcherConfig
	// busy is set while polls come back full: the burst loop polls only
	// then. busySignal wakes it.
	busy       atomic.Bool
	busySignal chan struct{}
	done       chan struct{}
	// settleWait bounds a loop's wait for the handlings under way
	// (reserve): settleWait, but for tests.
	settleWait time.Duration
}

// NewFetcher returns a fetcher, not yet started.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	return &Fetcher{cfg: cfg, busySignal: make(chan struct{}, 1), done: make(chan struct{}), settleWait: settleWait}
}

// Start starts the polling loops, until ctx ends; Done is closed once they
// all returned, after which nothing more is sent on deliveries.
func (f *Fetcher) Start(ctx context.Context, deliveries chan Delivery) {
	var loops sync.WaitGroup
	for i := range f.cfg.WorkerThreads {
		loops.Go(func() { f.pollingLoop(ctx, i, deliveries) })
	}
	if f.cfg.Burst {
		loops.Go(func() { f.burstLoop(ctx, deliveries) })
	}
	go func() {
		loops.Wait()
		close(f.done)
	}()
}

// Done is closed once every polling loop returned.
func (f *Fetcher) Done() <-chan struct{} { return f.done }

// pollingLoop is one of the worker's polling loops (WorkerThreads of
// them): it polls, sleeps at the end of the queue until an enqueue wakes
// it, and keeps to the Throttle.
func (f *Fetcher) pollingLoop(ctx context.Context, i int, deliveries chan Delivery) {
	f.cfg.Completer.Awoken()
	defer f.cfg.Completer.Asleep()
	defer f.cfg.Room.LoopAwake(-1)
	if i > 0 && !f.pause(ctx, time.Duration(rand.Int64N(int64(250*time.Millisecond)))) {
		return // loops after the first start spread out
	}
	if i == 0 && f.cfg.BeforeFirstPoll != nil {
		f.cfg.BeforeFirstPoll(ctx)
	}
	l := f.newPollLoop(deliveries)
	defer l.end()
	for {
		// Taken before the poll: an outcome the flusher records from now
		// on, while this loop sleeps, wakes it.
		alarm := f.cfg.Completer.Readied()
		sleep, ok := l.turn(ctx)
		if !ok {
			return
		}
		switch {
		case sleep != nil:
			f.cfg.Completer.Asleep()
			f.cfg.Room.LoopAwake(-1)
			f.sleep(ctx, sleep, alarm, f.cfg.Events.Asleep)
			f.cfg.Room.LoopAwake(1)
			f.cfg.Completer.Awoken()
		case f.cfg.Throttle != nil && l.errs == 0: // a failed poll paused already
			f.pause(ctx, f.cfg.Throttle(int(l.queueSize)))
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// pollLoop is what one loop keeps from poll to poll.
type pollLoop struct {
	f          *Fetcher
	p          *Poller
	deliveries chan Delivery
	sleeps     [5]time.Duration // end-of-queue sleeps by dry laps, floored

	queueSize int64     // as the last poll that asked for it saw it
	sizeSeen  time.Time // when it was asked for

	errs                   int // polls failed in a row
	failingSince, loggedAt time.Time
}

func (f *Fetcher) newPollLoop(deliveries chan Delivery) *pollLoop {
	l := &pollLoop{f: f, p: NewPoller(f.cfg.Store.Poll), deliveries: deliveries}
	for j := range l.sleeps {
		l.sleeps[j] = max(MinEndOfQueueSleep, f.cfg.EndOfQueueBackoff(j))
	}
	return l
}

// end hands the loop's poller to the completer when its last call went
// unanswered: the flusher settles it.
func (l *pollLoop) end() {
	if !l.p.Settled() {
		l.f.cfg.Completer.Adopt(l.p)
	}
}

// turn is one poll: it waits for room, records the outcomes handed in
// since the last poll and takes as many messages as there is room for, in
// one script call, and hands them to the handlers. It answers the poll's
// sleep step when the poll reached the end of the queue, and false when
// ctx ended. After a failed poll it pauses, by an exponential backoff.
func (l *pollLoop) turn(ctx context.Context) (*protocol.Step, bool) {
	f := l.f
	if !f.cfg.Room.MayPoll() && !f.awaitTurn(ctx) {
		return nil, false
	}
	n := f.reserve(ctx, l.deliveries)
	if n == 0 {
		return nil, false
	}
	for !f.cfg.Room.MayPoll() {
		// A queue before this one, in strict order, woke meanwhile: the
		// room goes back, and the loop waits for its turn again.
		f.cfg.Room.Finish(n)
		if !f.awaitTurn(ctx) {
			return nil, false
		}
		if n = f.reserve(ctx, l.deliveries); n == 0 {
			return nil, false
		}
	}
	if f.cfg.Throttle != nil && n > 1 {
		// Throttled, a loop takes one message per poll, as Carmine's
		// does, so that the pause paces messages.
		f.cfg.Room.Finish(n - 1)
		n = 1
	}
	held := f.cfg.Room.Held(n)
	batch := f.cfg.Completer.Take(l.p.Room())
	wantSize := f.cfg.Throttle != nil || time.Since(l.sizeSeen) >= queueSizeSampleEvery
	f.cfg.Room.Sending(n)
	reply, resolved, err := l.p.Call(ctx, protocol.PollArgs{
		LockTime:   f.cfg.LockTime,
		Sleeps:     l.sleeps,
		MaxSteps:   4*n + 16,
		MaxHandles: n,
		WantSize:   wantSize,
		Held:       held,
	}, batch)
	received := time.Now()
	f.cfg.Room.Answered(n)
	if err != nil {
		f.cfg.Room.Finish(n)
		if ctx.Err() != nil {
			return nil, false
		}
		return nil, l.failed(ctx, err, received)
	}
	markCancelled(resolved, reply.Cancelled)
	f.cfg.Completer.Done(resolved, reply.Recorded)
	if l.errs > 0 {
		f.cfg.Log.Info("mq: poll recovered", slog.Int("after_errors", l.errs),
			slog.Duration("after", received.Sub(l.failingSince)))
		l.errs = 0
	}
	if reply.QueueSize >= 0 {
		l.queueSize, l.sizeSeen = reply.QueueSize, received
		f.cfg.Events.QueueSize(l.queueSize)
	}

	handled, ndry, suspects := 0, int64(0), 0
	var sleep *protocol.Step
	for k := range reply.Steps {
		s := &reply.Steps[k]
		switch s.Kind {
		case protocol.StepHandle:
			handled++
			if s.Solo {
				f.cfg.Room.Solo() // before the executor may finish it
			}
			// Never blocks: deliveries has room for every message that
			// may be taken.
			l.deliveries <- Delivery{Step: *s, QueueSize: l.queueSize, Sent: reply.Sent, Received: received, Lane: f.cfg.Lane}
		case protocol.StepSleep:
			sleep, ndry = s, s.NDryRuns
		case protocol.StepSkip:
			f.cfg.Events.Skipped(s.Reason)
			if s.Reason == protocol.SkipSuspect {
				suspects++
			}
		}
	}
	// A suspect left for a worker holding nothing: this one drains (takes
	// nothing until it holds nothing) rather than sleep, so that a queue
	// whose every worker is busy still hands it out (docs/protocol.md
	// §11, Quarantine).
	if suspects > 0 {
		f.cfg.Room.Drain(min(f.cfg.LockTime, MaxDrain))
		sleep = nil
	} else if held == 0 {
		f.cfg.Room.Drained()
	}
	f.cfg.Room.Finish(n - handled)
	f.setBusy(sleep == nil && handled == n)
	f.cfg.Events.Polled(ctx, PollInfo{QueueSize: l.queueSize, NDryRuns: ndry, Handled: handled, Slept: sleep != nil})
	return sleep, true
}

// failed counts and logs a failed poll (once, then every errorLogEvery
// while polls go on failing), and pauses before the next. It answers false
// when ctx ended meanwhile.
func (l *pollLoop) failed(ctx context.Context, err error, at time.Time) bool {
	f := l.f
	l.errs++
	f.cfg.Events.PollFailed()
	factor := 200 * time.Millisecond
	if f.cfg.Throttle != nil {
		factor = positiveOr(f.cfg.Throttle(int(l.queueSize)), factor)
	}
	d := ExpBackoff(min(12, l.errs), 0, maxErrorBackoff, factor)
	if l.errs == 1 {
		l.failingSince, l.loggedAt = at, at
		f.cfg.Log.Warn("mq: poll failed", slog.Any("error", err), slog.Duration("retry_in", d))
	} else if at.Sub(l.loggedAt) >= errorLogEvery {
		l.loggedAt = at
		f.cfg.Log.Warn("mq: polls still failing", slog.Any("error", err),
			slog.Int("consecutive_errors", l.errs), slog.Duration("for", at.Sub(l.failingSince)))
	}
	return f.pause(ctx, d)
}

// pause sleeps for d or until ctx ends, handing outcomes to the flusher
// meanwhile, and answers whether it slept the whole time.
func (f *Fetcher) pause(ctx context.Context, d time.Duration) bool {
	f.cfg.Completer.Asleep()
	defer f.cfg.Completer.Awoken()
	return SleepCtx(ctx, d)
}

// positiveOr answers d when it is positive, else fallback.
func positiveOr(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// burstLoop is the second poll in flight of WorkerConfig.Prefetch: it
// polls only while the worker prefetches and polls come back full, so
// that Redis runs one poll while the worker hands out another's messages,
// and it never sleeps at the end of the queue.
func (f *Fetcher) burstLoop(ctx context.Context, deliveries chan Delivery) {
	f.cfg.Completer.Awoken()
	defer f.cfg.Completer.Asleep()
	l := f.newPollLoop(deliveries)
	defer l.end()
	for f.awaitBusy(ctx) {
		f.cfg.Events.BurstPoll()
		if _, ok := l.turn(ctx); !ok {
			return
		}
	}
}

// setBusy records whether the last poll came back full, and wakes the
// burst loop when it did.
func (f *Fetcher) setBusy(full bool) {
	f.busy.Store(full)
	if full {
		select {
		case f.busySignal <- struct{}{}:
		default:
		}
	}
}

// awaitBusy waits, counted as asleep by the completer, until polls come back
// full while the worker prefetches. It answers false when ctx ended.
func (f *Fetcher) awaitBusy(ctx context.Context) bool {
	if f.busy.Load() && f.cfg.Room.Prefetching() {
		return true
	}
	f.cfg.Completer.Asleep()
	defer f.cfg.Completer.Awoken()
	for {
		select {
		case <-f.busySignal:
		case <-ctx.Done():
			return false
		}
		if f.busy.Load() && f.cfg.Room.Prefetching() {
			return true
		}
	}
}

// awaitTurn waits, counted as asleep by the completer, until the room's
// loops may poll (Pool, strict: every queue before this one came back
// empty). It answers false when ctx ended.
func (f *Fetcher) awaitTurn(ctx context.Context) bool {
	p := f.cfg.Room.pool
	for {
		changed := p.changed.wait()
		if f.cfg.Room.MayPoll() {
			return true
		}
		f.cfg.Completer.Asleep()
		select {
		case <-changed:
			f.cfg.Completer.Awoken()
		case <-ctx.Done():
			f.cfg.Completer.Awoken()
			return false
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
//
// With nothing waiting for a handler but quick handlings still under way
// while another poll is under way (Room.Finishing), it first waits for
// those handlings, for at most settleWait and no longer than that poll is
// under way: the other poll's messages come first anyway, and this poll
// then takes the room of the messages just done with too, rather than
// leave it to a poll of its own. Handlers kept
// busy by a poll-per-loop pipeline otherwise free that room just after a
// loop reserved, and the loops' polls settle into sizes summing to the
// limit less the handler threads (8 handlers, prefetch 32: 7 and 26 in
// turn, 0.061 script calls a message, where waiting makes it 0.051).
func (f *Fetcher) reserve(ctx context.Context, deliveries chan Delivery) int {
	var timer, settle *time.Timer
	var late, settled <-chan time.Time // settled: nil once settleWait passed
	parked := false                    // counted as asleep by the completer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if settle != nil {
			settle.Stop()
		}
		if parked {
			f.cfg.Completer.Awoken()
		}
	}()
	held := false // waited for the handlings in hand
	for {
		waiting := len(deliveries)
		hold := false // for the handlings in hand
		if waiting == 0 && f.cfg.Room.Finishing() {
			if settle == nil {
				settle = time.NewTimer(f.settleWait)
				settled = settle.C
			}
			hold = settled != nil
		}
		if hold {
			held = true
		} else {
			if held {
				// The wait began with nothing waiting for a handler:
				// the other poll's answer, come meanwhile, does not make
				// this one wait for half the limit.
				waiting = 0
			}
			if n := f.cfg.Room.TryTake(waiting); n > 0 {
				return n
			}
		}
		if timer == nil {
			timer = time.NewTimer(maxOutcomeDelay)
			late = timer.C
		}
		var drained <-chan time.Time // the end of a drain for a suspect
		var drainTimer *time.Timer
		if left := f.cfg.Room.DrainLeft(); left > 0 {
			drainTimer = time.NewTimer(left)
			drained = drainTimer.C
		}
		select {
		case <-f.cfg.Room.Freed():
		case <-drained:
		case <-settled:
			settled = nil // waited long enough: the room there is will do
		case <-late:
			late, parked = nil, true
			f.cfg.Completer.Asleep()
		case <-ctx.Done():
			return 0
		}
		if drainTimer != nil {
			drainTimer.Stop()
		}
	}
}

// sleep is the interruptible sleep of docs/protocol.md §5: until an
// enqueue moves the sleep sentinel onto the list the poll named, until the
// sleep's time is up, until alarm fires (the worker's own outcomes made
// something ready or due sooner), or until ctx ends. The workers of one
// client share the hub's blocking call where the server allows it
// (hub.go); otherwise each blocks on its own connection. asleep is called
// once the worker is blocked.
func (f *Fetcher) sleep(ctx context.Context, s *protocol.Step, alarm <-chan struct{}, asleep func()) {
	st := f.cfg.Store
	from, to := st.SleepLists(s)
	d := s.Sleep
	if !s.UntilDue {
		d = jitter(d)
	}
	if f.cfg.Hub.Sleep(ctx, from, to, d, alarm, asleep) {
		return
	}
	if from != to {
		// Wake when the earliest message falls due, or on the alarm.
		// Redis ends a blocking call's timeout only when its event loop
		// next wakes, up to 1/hz (100 ms by default) late on an idle
		// server; moving the sentinel onto the list we block on ends it at
		// once, as an enqueue does.
		var due <-chan time.Time
		if s.UntilDue {
			t := time.NewTimer(d)
			defer t.Stop()
			due = t.C
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-due:
			case <-alarm:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
			f.nudge(ctx, to, from)
		}()
	}
	asleep()
	chunk := cmp.Or(f.cfg.SleepChunk, sleepChunk)
	deadline := time.Now().Add(d)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		woken, err := st.BlockingMove(ctx, from, to, min(left, chunk))
		if woken || err != nil {
			return // woken, or Redis trouble: let the next poll report it
		}
		if from == to {
			continue // paused: what is ready waits for the resume
		}
		ready, err := st.HasReady(ctx)
		if err != nil || ready {
			return
		}
	}
}

// nudge moves the sleep sentinel from one isleep list to the other, which
// wakes a worker blocked on the other (this one, or another of the queue's
// sleepers, which will find the same due message).
func (f *Fetcher) nudge(ctx context.Context, from, to string) {
	if ctx.Err() != nil {
		return // stopping: nobody needs waking
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = f.cfg.Store.Nudge(ctx, from, to)
}

// jitter spreads a sleep over 80-120% of d, so that loops that slept
// together wake apart.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

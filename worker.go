package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// Worker defaults (SPEC section 7).
const (
	// DefaultLockTime is the default lock time of a message: 60 minutes.
	DefaultLockTime = 60 * time.Minute
	// DefaultMonitorMaxQueueSize is the queue size over which the default
	// monitor warns.
	DefaultMonitorMaxQueueSize = 1000
	// DefaultMonitorWarnEvery is how often at most the default monitor
	// warns.
	DefaultMonitorWarnEvery = 6 * time.Hour
)

// maxErrorBackoff caps the pause after consecutive loop errors, which
// Carmine lets grow to many minutes: a worker notices a returning Redis
// within about a second. errorLogEvery spaces the warnings meanwhile.
const (
	maxErrorBackoff = time.Second
	errorLogEvery   = 30 * time.Second
)

// sleepChunk is the longest single blocking call of an end-of-queue sleep.
// Between calls the worker checks whether it is stopping and whether
// messages are ready, so that Stop is prompt and a wake-up missed in a race
// is not missed for long.
const sleepChunk = time.Second

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

// minEndOfQueueSleep is the shortest end-of-queue sleep, whatever
// EndOfQueueBackoff says, so that an idle worker never polls in a hot loop.
const minEndOfQueueSleep = 10 * time.Millisecond

// WorkerConfig configures a [Worker]. The zero value (or nil) is valid: it
// logs each message and answers success.
type WorkerConfig struct {
	// Handler handles each message. Default: log the message at Info level
	// and answer success.
	Handler Handler

	// Monitor is called on every loop turn with the queue size and what the
	// poll did. Default: MonitorFn(DefaultMonitorMaxQueueSize,
	// DefaultMonitorWarnEvery), a warning when more than 1000 messages wait,
	// at most every 6 hours.
	Monitor MonitorFunc

	// LockTime is how long a handler may hold a message, unless the message
	// was enqueued with its own, before it is taken for stalled and handed
	// out again. It must exceed the longest handling, or RenewLocks must be
	// on. Default: DefaultLockTime (60 minutes).
	LockTime time.Duration

	// EndOfQueueBackoff gives the end-of-queue sleep after n dry laps in a
	// row (n from 0 to 4). An enqueue cuts the sleep short. Use Constant for
	// a fixed time. Times under 10 ms count as 10 ms, so that an idle worker
	// never spins. Default: DefaultEndOfQueueBackoff (0.5 s up to 16 s).
	EndOfQueueBackoff func(n int64) time.Duration

	// Throttle gives a pause after every poll, as a function of the queue
	// size. Use Constant for a fixed pause, or DefaultThrottle for
	// Carmine's. Default: nil, no pause.
	Throttle func(queueSize int64) time.Duration

	// WorkerThreads is the number of polling loops. Default: 1.
	WorkerThreads int

	// HandlerThreads is the number of messages handled at once. Default: 1.
	HandlerThreads int

	// Prefetch is how many messages the worker may take beyond those its
	// handlers are busy with, so that a poll can take several at once and
	// handlers need not wait a round trip for the next. A prefetched message
	// is locked (and its attempt counted) from the poll on. The worker
	// prefetches only while handlings are quick (under 10 ms on average
	// lately) and LockTime is at least 10 s; a message that waited more
	// than a quarter of its lock time (and 10 ms), one whose poll took so
	// long that less than a quarter of its lock time is left, and any
	// still waiting when the worker stops, are given back unhandled:
	// unlocked, their attempt uncounted, first in line.
	//
	// While prefetching, and while polls come back full (the queue holds
	// more than they could take), the worker keeps a second poll in
	// flight, so that Redis runs one while the worker hands out the other's
	// messages; it stops once a poll comes back short. A worker with a
	// Throttle keeps to its polling loops.
	//
	// Default: 0, which means max(32, HandlerThreads); a negative value
	// turns prefetching off.
	Prefetch int

	// ManualStart leaves the worker stopped until Start is called.
	// Default: false; NewWorker starts it, as Carmine's auto start does.
	ManualStart bool

	// RenewLocks pushes a message's lock forward every third of its lock
	// time while its handler runs, so that a short lock time recovers from
	// crashed workers quickly while long handlings still run once. If
	// renewal fails for longer than the lock time, or the lock is lost, the
	// handler's context is cancelled. Default: false.
	RenewLocks bool
}

func (c *WorkerConfig) withDefaults() WorkerConfig {
	var out WorkerConfig
	if c != nil {
		out = *c
	}
	if out.Handler == nil {
		out.Handler = HandlerFunc(logHandler)
	}
	if out.Monitor == nil {
		out.Monitor = MonitorFn(DefaultMonitorMaxQueueSize, DefaultMonitorWarnEvery)
	}
	if out.LockTime == 0 {
		out.LockTime = DefaultLockTime
	}
	if out.EndOfQueueBackoff == nil {
		out.EndOfQueueBackoff = DefaultEndOfQueueBackoff
	}
	if out.WorkerThreads == 0 {
		out.WorkerThreads = 1
	}
	if out.HandlerThreads == 0 {
		out.HandlerThreads = 1
	}
	if out.Prefetch == 0 {
		out.Prefetch = max(defaultPrefetch, out.HandlerThreads)
	}
	return out
}

func (c *WorkerConfig) validate() error {
	switch {
	case c.LockTime < time.Millisecond:
		return fmt.Errorf("%w: LockTime %v is under 1ms", ErrInvalidOption, c.LockTime)
	case c.WorkerThreads < 0:
		return fmt.Errorf("%w: WorkerThreads %d is negative", ErrInvalidOption, c.WorkerThreads)
	case c.HandlerThreads < 0:
		return fmt.Errorf("%w: HandlerThreads %d is negative", ErrInvalidOption, c.HandlerThreads)
	}
	return nil
}

// logHandler is the default handler: it logs the message and succeeds.
func logHandler(ctx context.Context, m *Message) error {
	v, err := m.Value()
	if err != nil {
		return err
	}
	slog.InfoContext(ctx, "mq: message", slog.String("queue", m.Queue),
		slog.String("message_id", m.ID), slog.Int("attempt", m.Attempt), slog.Any("message", v))
	return nil
}

// Worker polls one queue and hands its messages to a handler. Many workers,
// in one process or many, may share a queue. Its methods are safe for
// concurrent use.
type Worker struct {
	c      *Client
	queue  string
	cfg    WorkerConfig
	log    *slog.Logger
	stats  *workerStats
	outbox *outbox

	// taken counts messages taken by polls and not yet finished (handled
	// or given back); a poll takes at most limit() - taken. freed wakes a
	// loop waiting for room when a message finishes.
	taken atomic.Int64
	freed chan struct{}
	// handlingNS is a moving average of handling times, in ns: prefetching
	// waits until handlings have been seen to be quick.
	handlingNS atomic.Int64
	// busy is set while polls come back full: the burst loop (see
	// WorkerConfig.Prefetch) polls only then. busySignal wakes it.
	busy       atomic.Bool
	busySignal chan struct{}

	mu             sync.Mutex
	running        bool
	stopPolling    context.CancelFunc
	cancelHandlers context.CancelFunc
	handlersCtx    context.Context
	deliveries     chan delivery // messages taken, waiting for a handler
	stopFlusher    func()        // ends the flusher after one last flush
	flusherDone    chan struct{} // closed when the flusher returns
	loops          sync.WaitGroup
	handlers       sync.WaitGroup
}

// NewWorker returns a worker for queue. cfg may be nil for defaults; it is
// copied. Unless cfg.ManualStart is set, the worker is started at once
// (with context.Background()).
func (c *Client) NewWorker(queue string, cfg *WorkerConfig) (*Worker, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	wc := cfg.withDefaults()
	if err := wc.validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		c:     c,
		queue: queue,
		cfg:   wc,
		log:   c.log.With(slog.String("queue", queue)),
		stats: newWorkerStats(),
		freed: make(chan struct{}, 1),

		busySignal: make(chan struct{}, 1),
	}
	w.handlingNS.Store(int64(2 * prefetchMaxHandling))
	w.outbox = newOutbox(w)
	if !wc.ManualStart {
		if err := w.Start(context.Background()); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Start starts the worker's polling loops. Handler contexts carry ctx's
// values; ctx's end stops polling, as Stop does, without waiting. Starting
// a running worker does nothing; a stopped worker may be started again.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return nil
	}
	base := context.WithoutCancel(ctx)
	pollCtx, stopPolling := context.WithCancel(base)
	w.handlersCtx, w.cancelHandlers = context.WithCancel(base)
	w.stopPolling = stopPolling
	w.running = true
	context.AfterFunc(ctx, stopPolling)
	flusherStop := make(chan struct{})
	w.stopFlusher = sync.OnceFunc(func() { close(flusherStop) })
	w.flusherDone = make(chan struct{})
	w.outbox.open()
	go func(killed context.Context, done chan struct{}) {
		defer close(done)
		w.outbox.run(killed, flusherStop)
	}(w.handlersCtx, w.flusherDone)
	w.log.Info("mq: worker starting",
		slog.Int("worker_threads", w.cfg.WorkerThreads), slog.Int("handler_threads", w.cfg.HandlerThreads))
	deliveries := make(chan delivery, w.cfg.HandlerThreads+max(0, w.cfg.Prefetch))
	w.deliveries = deliveries
	for i := range w.cfg.WorkerThreads {
		w.loops.Add(1)
		go w.loop(pollCtx, i, false, deliveries)
	}
	if w.cfg.Prefetch > 0 && w.cfg.Throttle == nil {
		w.loops.Add(1)
		go w.loop(pollCtx, w.cfg.WorkerThreads, true, deliveries)
	}
	for range w.cfg.HandlerThreads {
		w.handlers.Add(1)
		go w.handlerLoop(w.handlersCtx, pollCtx, deliveries)
	}
	go func() {
		// Once the loops are done, no more deliveries come: the handlers
		// finish what is in hand, give back the rest, and return.
		w.loops.Wait()
		close(deliveries)
	}()
	return nil
}

// Stop stops polling, gives back the prefetched messages no handler has
// started (see WorkerConfig.Prefetch), and waits for the handlers in flight
// and the recording of their outcomes, like http.Server.Shutdown. When ctx ends
// first, it cancels the handlers' contexts and returns ctx.Err(); messages
// whose outcome was not recorded stay locked and are handled again once
// their lock expires. Stopping a worker that is not running does nothing.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return nil
	}
	w.running = false
	w.stopPolling()
	cancelHandlers, stopFlusher, flusherDone := w.cancelHandlers, w.stopFlusher, w.flusherDone
	deliveries := w.deliveries
	w.mu.Unlock()

	// Messages prefetched and not started are given back at once, by
	// whichever of this and the handlers gets them first.
	w.loops.Wait()
	for d := range deliveries {
		w.giveBack(d)
	}
	done := make(chan struct{})
	go func() {
		w.handlers.Wait()
		stopFlusher()
		<-flusherDone
		close(done)
	}()
	select {
	case <-done:
		cancelHandlers()
		w.log.Info("mq: worker stopped")
		return nil
	case <-ctx.Done():
		// Handlers still running learn it from their context; outcomes not
		// yet recorded get one more try, then are abandoned.
		cancelHandlers()
		stopFlusher()
		<-flusherDone
		w.log.Warn("mq: worker stopped with handlers in flight", slog.Any("error", ctx.Err()))
		return ctx.Err()
	}
}

// Close stops the worker at once: it cancels the contexts of the handlers
// in flight and returns once polling has ended, without waiting for them.
func (w *Worker) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := w.Stop(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

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
		reply, resolved, err := p.call(ctx, pollArgs{
			lockTime:   w.cfg.LockTime,
			sleeps:     sleeps,
			maxSteps:   4*n + 16,
			maxHandles: n,
			wantSize:   wantSize,
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
		w.outbox.done(resolved, reply.recorded)
		if errs > 0 {
			w.log.Info("mq: poll recovered", slog.Int("after_errors", errs),
				slog.Duration("after", received.Sub(failingSince)))
			errs = 0
		}
		if reply.queueSize >= 0 {
			queueSize, sizeSeen = reply.queueSize, received
			w.stats.queueSize.Add(float64(queueSize))
		}

		handled, ndry := 0, int64(0)
		var sleep *pollStep
		for k := range reply.steps {
			s := &reply.steps[k]
			switch s.kind {
			case stepHandle:
				handled++
				// Never blocks: deliveries has room for every message
				// that may be taken.
				deliveries <- delivery{step: *s, queueSize: queueSize, sent: reply.sent, received: received}
			case stepSleep:
				sleep, ndry = s, s.ndryRuns
			case stepSkip:
				w.stats.countSkip(s.reason)
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

// sleep is the interruptible sleep of SPEC section 5: a blocking move of the
// sleep sentinel from the list the poll named to the other, which an
// enqueue ends at once by moving the sentinel into that list.
func (w *Worker) sleep(ctx context.Context, s *pollStep) {
	ks := w.c.keys(w.queue)
	from, to := ks[keys.ISleepA], ks[keys.ISleepB]
	if s.sleepList == "b" {
		from, to = to, from
	}
	deadline := time.Now().Add(jitter(s.sleep))
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		err := w.blockingMove(ctx, from, to, min(left, sleepChunk))
		if err == nil {
			return // woken by an enqueue
		}
		if !errors.Is(err, redis.Nil) {
			return // Redis trouble: let the next poll report it
		}
		n, err := within(w.c, ctx, func(ctx context.Context) (int64, error) {
			return w.c.rdb.LLen(ctx, ks[keys.MidsReady]).Result()
		})
		if err != nil || n > 0 {
			return
		}
	}
}

// blockingMove moves the sleep sentinel from one list to the other,
// waiting up to d (at most sleepChunk) for it to arrive.
func (w *Worker) blockingMove(ctx context.Context, from, to string, d time.Duration) error {
	_, err := within(w.c, ctx, func(ctx context.Context) (struct{}, error) {
		if d >= time.Second {
			// go-redis reads for the timeout plus its own margin, so the
			// read never times out before Redis answers.
			return struct{}{}, w.c.rdb.BLMove(ctx, from, to, "RIGHT", "LEFT", d.Truncate(time.Second)).Err()
		}
		// go-redis's BLMove sends whole seconds only; below one second,
		// send the fraction. The read then has the client's ReadTimeout
		// (5s by default), above any fraction of a second; a shorter one
		// only cuts the sleep short.
		secs := strconv.FormatFloat(max(d, time.Millisecond).Seconds(), 'f', 3, 64)
		return struct{}{}, w.c.rdb.Do(ctx, "blmove", from, to, "RIGHT", "LEFT", secs).Err()
	})
	return err
}

// sleepCtx sleeps for d or until ctx ends, and answers whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// delivery is a message taken by a poll, on its way to a handler.
type delivery struct {
	step      pollStep
	queueSize int64
	sent      time.Time // when the poll was sent: the lock runs out no sooner than its lock time after
	received  time.Time // when the poll's reply came
}

// stale tells whether a delivery should go back rather than to a handler:
// it waited in the worker over a quarter of its lock time (and
// minStaleWait), or the poll took so long that under a quarter of the lock
// time is left (the handler would soon have its context ended).
func (d *delivery) stale() bool {
	lt := d.step.lockTime
	return time.Since(d.received) > max(lt/4, minStaleWait) || time.Since(d.sent) > lt-lt/4
}

// handlerLoop is one handler thread: it handles deliveries until the loops
// are done and deliveries is drained. Once polling has stopped, messages not
// yet started are given back instead.
func (w *Worker) handlerLoop(base, polling context.Context, deliveries <-chan delivery) {
	defer w.handlers.Done()
	expiry := newLockExpiry()
	defer expiry.stop()
	for d := range deliveries {
		if polling.Err() != nil || d.stale() {
			w.giveBack(d)
			continue
		}
		start := time.Now()
		w.handle(base, d, expiry)
		took := time.Since(start)
		avg := w.handlingNS.Load()
		w.handlingNS.Store(avg + (int64(took)-avg)/handlingTimeSmoothing)
		w.finish(1)
	}
}

// giveBack returns a message taken but not handled (SPEC section 10's
// fencing applies: if the lock was lost meanwhile, nothing changes).
func (w *Worker) giveBack(d delivery) {
	w.stats.count(CountReleased)
	w.outbox.add(pendingOutcome{
		completion: completion{id: d.step.id, lockedUntil: d.step.lockedUntil, outcome: outcomeRelease},
		attempt:    d.step.attempt,
	})
	w.finish(1)
}

// handle runs the handler on one message and hands in its outcome.
func (w *Worker) handle(base context.Context, d delivery, expiry *lockExpiry) {
	s := &d.step
	ctx, cancel := context.WithCancelCause(base)
	defer cancel(nil)
	lock := newHeldLock(w.c, w.queue, s.id, s.lockTime, s.lockedUntil, d.sent.Add(s.lockTime), cancel, expiry)
	defer lock.over()
	msg := &Message{
		Queue:     w.queue,
		ID:        s.id,
		Data:      s.data,
		Attempt:   int(s.attempt),
		LockTime:  s.lockTime,
		Age:       time.Duration(s.now-s.firstEnqueued) * time.Millisecond,
		QueueSize: d.queueSize,
		codec:     w.c.cfg.Codec,
		lock:      lock,
	}
	if s.attempt == 1 {
		w.stats.queueingTime.Add(float64(msg.Age.Milliseconds()))
	}

	var renewWG sync.WaitGroup
	var renewDone chan struct{}
	if w.cfg.RenewLocks {
		renewDone = make(chan struct{})
		renewWG.Add(1)
		go func() {
			defer renewWG.Done()
			w.renewLoop(ctx, lock, renewDone, w.messageLog(s.id, s.attempt))
		}()
	}

	start := time.Now()
	err := w.call(ctx, msg)
	w.stats.handlingTime.Add(float64(time.Since(start).Milliseconds()))
	if renewDone != nil {
		close(renewDone)
		renewWG.Wait()
	}

	oc := outcomeOf(err)
	if oc.name == outcomeError && ctx.Err() != nil {
		// Cancelled by a stop or a lost lock, the handler gave up: leave the
		// message locked, to be handled again when its lock expires.
		w.stats.count(CountAbandoned)
		w.messageLog(s.id, s.attempt).Warn("mq: handling abandoned; the message stays locked until its lock expires",
			slog.Any("error", err), slog.Any("cause", context.Cause(ctx)))
		return
	}
	switch oc.name {
	case outcomeSuccess:
		w.stats.count(CountSuccess)
	case outcomeRetry:
		w.stats.count(CountRetry)
	case outcomeError:
		w.stats.count(CountError)
		w.messageLog(s.id, s.attempt).Error("mq: handler error", slog.Any("error", oc.err))
	}
	if oc.backoff > 0 {
		w.stats.count(CountBackoff)
	}
	w.outbox.add(pendingOutcome{
		completion: completion{id: lock.id, lockedUntil: lock.token(), outcome: oc.name, backoff: oc.backoff},
		attempt:    s.attempt,
	})
}

// messageLog is the worker's logger with a message's id and attempt; it is
// made only when there is something to log.
func (w *Worker) messageLog(id string, attempt int64) *slog.Logger {
	return w.log.With(slog.String("message_id", id), slog.Int64("attempt", attempt))
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, msg *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mq: handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return w.cfg.Handler.Handle(ctx, msg)
}

// renewLoop pushes lock forward every third of its lock time until done is
// closed or ctx ends. Should renewals fail, the lock's own timer cancels
// the handling when the lock runs out (heldLock); when a renewal finds the
// lock lost, it cancels the handling at once.
func (w *Worker) renewLoop(ctx context.Context, lock *heldLock, done <-chan struct{}, log *slog.Logger) {
	every := max(lock.lockTime/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A renewal may take until the lock could run out: a slow answer
		// still counts, and after that the lock's timer has ended ctx.
		rctx, rcancel := context.WithDeadline(ctx, lock.deadline())
		err := lock.renew(rctx)
		rcancel()
		switch {
		case err == nil:
			w.stats.count(CountRenewed)
		case errors.Is(err, ErrLockLost):
			// Not counted here: the handling is counted once, as lock-lost
			// when its outcome is fenced, or as abandoned.
			log.Warn("mq: lock lost while handling; cancelling the handler")
			return
		case ctx.Err() != nil:
			return
		default:
			log.Warn("mq: lock renewal failed", slog.Any("error", err))
		}
	}
}

// WorkerStatus is a snapshot of a worker.
type WorkerStatus struct {
	// Queue is the queue's name.
	Queue string
	// Config is the worker's configuration, defaults filled in.
	Config WorkerConfig
	// Running tells whether the worker is polling.
	Running bool
	// WorkerThreads and HandlerThreads are the thread counts.
	WorkerThreads, HandlerThreads int
	// Stats are the worker's statistics.
	Stats WorkerStats
}

// Status returns a snapshot of the worker. It is cheap and safe to call at
// any time.
func (w *Worker) Status() WorkerStatus {
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	return WorkerStatus{
		Queue:          w.queue,
		Config:         w.cfg,
		Running:        running,
		WorkerThreads:  w.cfg.WorkerThreads,
		HandlerThreads: w.cfg.HandlerThreads,
		Stats:          w.Stats(),
	}
}

// Stats returns the worker's statistics.
func (w *Worker) Stats() WorkerStats { return w.stats.snapshot() }

// ResetStats forgets the worker's statistics.
func (w *Worker) ResetStats() { w.stats.reset() }

// Queue returns the name of the worker's queue.
func (w *Worker) Queue() string { return w.queue }

package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/protocol"
)

// Worker polls one queue and hands its messages to a handler. Many workers,
// in one process or many, may share a queue. Its methods are safe for
// concurrent use.
//
// Its lifecycle is http.Server's: NewWorker makes it, Start runs it, Stop
// ends it gracefully by a deadline, Close at once. A stopped worker may be
// started again.
type Worker struct {
	c     *Client
	queue string
	cfg   WorkerConfig
	log   *slog.Logger
	stats *workerStats
	// completer records the outcomes of handlings (internal/engine).
	completer *engine.Completer

	// room counts the messages taken and not done with, against how
	// many the worker may hold (internal/engine).
	room *engine.Room

	// id identifies the worker in its heartbeat and logs. lastPoll is
	// when the last poll came back, in ns since epoch plus one (0: none
	// in this run), for the heartbeat.
	id       string
	epoch    time.Time
	lastPoll atomic.Int64
	// subs are the worker's event subscriptions (events.go).
	subs subscribers

	mu  sync.Mutex
	run *run // the current or last run; nil before the first Start

	// relayKick wakes the run's relay (handoff.go) after an outcome that
	// may have left hand-off records.
	relayKick chan struct{}
	relayOwn  ownRecords
	// multi is the multi-queue worker this one is a queue of, nil for a
	// plain worker: its runs share multi's handler threads, and lane is
	// where its deliveries go in them (multiqueue.go).
	multi *MultiWorker
	lane  *engine.Lane
	// cancelChannel is the queue's cancel channel (docs/protocol.md §20),
	// built once rather than per handling.
	cancelChannel string
}

// cancelWatcher answers a handler thread's watcher of cancels of the
// queue's messages, from the client's cancel watch (engine.Lane.Watcher).
func (w *Worker) cancelWatcher() engine.CancelWatcher {
	return w.c.cancels.watcher(w.cancelChannel)
}

// run is one run of a worker, from Start to the return of its last
// goroutine, which may come after Stop returned when Redis hangs.
type run struct {
	running        bool
	stopPolling    context.CancelFunc
	unwatch        func() bool // stops Start's ctx from stopping polling
	cancelHandlers context.CancelFunc
	deliveries     chan engine.Delivery // messages taken, waiting for a handler
	stopFlusher    func()               // ends the flusher after one last flush
	flusherDone    chan struct{}        // closed when the flusher returns
	loopsDone      chan struct{}        // closed when the polling loops returned
	done           chan struct{}        // closed when every goroutine returned
	// fetcher runs the polling loops, executor the handler threads.
	fetcher  *engine.Fetcher
	executor *engine.Executor
	// started is when the run started, and startCounts the worker's
	// counters then, for its stop line.
	started     time.Time
	startCounts [numCounters]int64
	// heartbeat keeps the run's heartbeat and summaries.
	heartbeat *engine.Heartbeat
	// schedulerDone is closed when the run's scheduler returned (at
	// once without one).
	schedulerDone chan struct{}
	// relayDone is closed when the run's hand-off relay returned.
	relayDone chan struct{}
}

// NewWorker returns a worker for queue, not yet started: Start runs it.
// cfg is copied; its Handler is required.
func (c *Client) NewWorker(queue string, cfg *WorkerConfig) (*Worker, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	wc := cfg.withDefaults()
	if err := wc.validate(); err != nil {
		return nil, err
	}
	h, err := Chain(wc.Handler, wc.Middleware...)
	if err != nil {
		return nil, err
	}
	wc.Handler = h
	w := &Worker{
		c:     c,
		queue: queue,
		cfg:   wc,
		log:   c.log.With(slog.String("queue", queue)),
		stats: newWorkerStats(),

		id:    randomID(),
		epoch: time.Now(),

		relayKick:     make(chan struct{}, 1),
		cancelChannel: protocol.CancelChannel(queue, c.cfg.Cluster),
	}
	w.cfg.Monitor = w.withPollNote(w.cfg.Monitor)
	w.room = engine.NewRoom(wc.HandlerThreads, wc.Prefetch, wc.Throttle != nil, wc.LockTime)
	w.room.Share(&c.holdings)
	w.completer = engine.NewCompleter((*queueStore)(w).Poll, (*completionEvents)(w))
	return w, nil
}

// StartWorker makes a worker for queue and starts it with ctx, as
// Carmine's worker starts on creation: NewWorker, then Start.
func (c *Client) StartWorker(ctx context.Context, queue string, cfg *WorkerConfig) (*Worker, error) {
	w, err := c.NewWorker(queue, cfg)
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// Start starts the worker's polling loops and handler threads, and
// returns. Handler contexts carry ctx's values; ctx's end stops polling,
// as Stop does, without waiting (Stop still ends the run). Start answers
// ErrWorkerRunning when the worker runs already, and ctx's error when ctx
// ends before a previous run's last goroutines returned (after a Stop cut
// short while Redis hung). A queue's worker of a MultiWorker
// (MultiWorker.Workers) is started by the MultiWorker only: its Start
// answers ErrInvalidOption.
func (w *Worker) Start(ctx context.Context) error {
	if w.multi != nil {
		return fmt.Errorf("%w: the worker of %q is a queue of a MultiWorker: start the MultiWorker", ErrInvalidOption, w.queue)
	}
	return w.start(ctx)
}

func (w *Worker) start(ctx context.Context) error {
	for {
		w.mu.Lock()
		prev := w.run
		if prev == nil || isClosed(prev.done) {
			break // w.mu held
		}
		running := prev.running
		w.mu.Unlock()
		if running {
			return ErrWorkerRunning
		}
		// The last run's goroutines are still ending: wait, without
		// holding w.mu, then look again.
		select {
		case <-prev.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.c.started(w); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	pollCtx, stopPolling := context.WithCancel(base)
	handlersCtx, cancelHandlers := context.WithCancel(base)
	unwatch := context.AfterFunc(ctx, stopPolling)
	flusherStop := make(chan struct{})
	// A queue of a multi-queue worker hands its messages to the handler
	// threads of the multi-queue worker's run (multiqueue.go).
	var shared *multiRun
	var deliveries chan engine.Delivery
	if w.multi != nil {
		shared = w.multi.cur
		handlersCtx, cancelHandlers = shared.handlersCtx, shared.cancelHandlers
		deliveries = shared.deliveries
	} else {
		deliveries = make(chan engine.Delivery, w.cfg.HandlerThreads+max(0, w.cfg.Prefetch))
	}
	r := &run{
		running:        true,
		stopPolling:    stopPolling,
		unwatch:        unwatch,
		cancelHandlers: cancelHandlers,
		deliveries:     deliveries,
		stopFlusher:    sync.OnceFunc(func() { close(flusherStop) }),
		flusherDone:    make(chan struct{}),
		loopsDone:      make(chan struct{}),
		done:           make(chan struct{}),
		fetcher: engine.NewFetcher(engine.FetcherConfig{
			WorkerThreads:     w.cfg.WorkerThreads,
			Burst:             w.cfg.Prefetch > 0 && w.cfg.Throttle == nil,
			LockTime:          w.cfg.LockTime,
			Throttle:          w.cfg.Throttle,
			EndOfQueueBackoff: w.cfg.EndOfQueueBackoff,
			Store:             (*queueStore)(w),
			Hub:               w.c.hub,
			Room:              w.room,
			Lane:              w.lane,
			Completer:         w.completer,
			Events:            (*fetcherEvents)(w),
			Log:               w.log,
			BeforeFirstPoll:   w.warnOfRedis,
			SleepChunk:        w.cfg.sleepChunk,
		}),
		executor: engine.NewExecutor(engine.ExecutorConfig{
			HandlerThreads: w.cfg.HandlerThreads,
			NoLockRenewal:  w.cfg.NoLockRenewal,
			RenewEvery:     w.cfg.renewEvery,
			Handler:        (*workerHandler)(w),
			Events:         (*workerHandler)(w),
			Store:          (*queueStore)(w),
			Room:           w.room,
			Completer:      w.completer,
			Watcher:        w.cancelWatcher,
		}),
		started:     time.Now(),
		startCounts: w.counters(),
	}
	if shared != nil {
		r.executor = shared.executor
	}
	w.run = r
	w.lastPoll.Store(0)
	w.completer.Open()
	go func() {
		defer close(r.flusherDone)
		w.completer.Run(handlersCtx, flusherStop)
	}()
	w.log.Info("mq: worker starting", w.startAttrs()...)
	r.heartbeat = w.heartbeat(base, r)
	// The client's sleep strategy, probed at its first worker's start,
	// says whether the polling loops may hold pooled connections.
	w.c.hub.Usable(ctx)
	if warning := w.c.addSleepers(w.cfg.WorkerThreads); warning != "" {
		w.log.Warn(warning)
	}
	w.c.cancels.join(w.queue)
	r.fetcher.Start(pollCtx, r.deliveries)
	if shared == nil {
		r.executor.Start(handlersCtx, pollCtx, r.deliveries)
	}
	r.schedulerDone = w.runScheduler(pollCtx)
	r.relayDone = w.runRelay(base, pollCtx, r.flusherDone)
	go func() {
		// Once the loops are done, no more deliveries come: the handlers
		// finish what is in hand, give back the rest, and return.
		<-r.fetcher.Done()
		<-r.schedulerDone
		w.c.addSleepers(-w.cfg.WorkerThreads)
		if shared != nil {
			shared.fetchers.Done() // the last closes the deliveries
		} else {
			close(r.deliveries)
		}
		close(r.loopsDone)
		<-r.executor.Done()
		w.c.cancels.leave(w.queue)
		<-r.flusherDone
		<-r.relayDone
		// Nothing of the run is left: it leaves the live workers.
		r.heartbeat.Stop()
		<-r.heartbeat.Done()
		leaveCtx, cancel := context.WithTimeout(base, closeGrace)
		r.heartbeat.Leave(leaveCtx)
		cancel()
		w.c.ended(w)
		close(r.done)
	}()
	return nil
}

// isClosed tells whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Stop stops polling, gives back the prefetched messages no handler has
// started (see WorkerConfig.Prefetch), and waits for the handlers in
// flight and the recording of their outcomes, like http.Server.Shutdown;
// the worker then leaves Inspector.Workers (its entry removed, waiting at
// most a second for Redis: an entry it could not remove runs out after
// the heartbeat's 20 s).
//
// When ctx ends first, Stop returns ctx.Err() at once, even with Redis
// hung: it cancels the handlers' contexts, and counts as abandoned
// (Counts.Abandoned) every handling still running and every outcome not
// known to be recorded. Their messages stay locked and are handled again
// once their locks expire. Stopping a worker that is not running does
// nothing. A queue's worker of a MultiWorker stops the MultiWorker: its
// queues share their handlers.
func (w *Worker) Stop(ctx context.Context) error {
	if w.multi != nil {
		return w.multi.Stop(ctx)
	}
	return w.stop(ctx, false)
}

// Close stops the worker without waiting for its handlers: it cancels
// their contexts at once, then gives back what was prefetched and records
// the outcomes handed in, waiting at most closeGrace for Redis. What it
// abandons is counted and logged as by a Stop cut short. A queue's
// worker of a MultiWorker closes the MultiWorker.
func (w *Worker) Close() error {
	if w.multi != nil {
		return w.multi.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	err := w.stop(ctx, true)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// closeGrace is how long Close waits for Redis to take what the worker
// gives back.
const closeGrace = time.Second

// stop is Stop, and Close when now is set: the handlers' contexts are
// cancelled at once.
func (w *Worker) stop(ctx context.Context, now bool) error {
	w.mu.Lock()
	r := w.run
	if r == nil || !r.running {
		w.mu.Unlock()
		return nil
	}
	r.running = false
	w.mu.Unlock()
	r.unwatch()
	r.stopPolling()
	if now {
		r.cancelHandlers()
	}

	select {
	case <-r.loopsDone:
	case <-ctx.Done():
		return w.cutShort(ctx, r)
	}
	// Messages prefetched and not started are given back at once, by
	// whichever of this and the handlers gets them first.
	for d := range r.deliveries {
		r.executor.GiveBack(d)
	}
	select {
	case <-r.executor.Done():
	case <-ctx.Done():
		return w.cutShort(ctx, r)
	}
	r.stopFlusher()
	select {
	case <-r.flusherDone:
	case <-ctx.Done():
		return w.cutShort(ctx, r)
	}
	r.cancelHandlers()
	// The run's end removes its heartbeat entry, so that a stopped worker
	// leaves Inspector.Workers at once when Redis answers within
	// closeGrace (else the entry runs out by itself).
	select {
	case <-r.done:
	case <-ctx.Done():
		return w.cutShort(ctx, r)
	}
	w.log.Info("mq: worker stopped", w.stopAttrs(r)...)
	return nil
}

// cutShort ends a stop whose ctx ended first: it cancels the handlers,
// abandons what is still in flight, and returns ctx's error.
func (w *Worker) cutShort(ctx context.Context, r *run) error {
	r.cancelHandlers()
	// The worker is stopped: its heartbeat ends now, and its entry runs
	// out unless the run's end removes it first.
	r.heartbeat.Stop()
	handlings := r.executor.Abandon()
	for range handlings {
		w.stats.count(cAbandoned)
		w.handled("", 0, OutcomeAbandoned)
	}
	outcomes := w.completer.CloseNow()
	r.stopFlusher()
	if handlings+outcomes > 0 {
		w.log.Warn("mq: worker stopped before its handlings were done; their messages stay locked until their locks expire",
			append(w.stopAttrs(r), slog.Any("error", ctx.Err()), slog.Int("handlings_abandoned", handlings),
				slog.Int("outcomes_abandoned", outcomes))...)
	} else {
		w.log.Info("mq: worker stopped", w.stopAttrs(r)...)
	}
	return ctx.Err()
}

// WorkerInfo describes a worker at one moment. It marshals to JSON as it
// is, for a debug endpoint.
type WorkerInfo struct {
	// Queue is the queue's name.
	Queue string `json:"queue"`
	// Running tells whether the worker is running: started and not
	// stopped.
	Running bool `json:"running"`
	// The worker's settings, defaults filled in (see WorkerConfig).
	LockTime       time.Duration `json:"lock_time"`
	WorkerThreads  int           `json:"worker_threads"`
	HandlerThreads int           `json:"handler_threads"`
	Prefetch       int           `json:"prefetch"`
	RenewLocks     bool          `json:"renew_locks"`
	// Stats are the worker's statistics.
	Stats WorkerStats `json:"stats"`
}

// Info describes the worker now. It is cheap and safe to call at any time.
func (w *Worker) Info() WorkerInfo {
	w.mu.Lock()
	running := w.run != nil && w.run.running
	w.mu.Unlock()
	return WorkerInfo{
		Queue:          w.queue,
		Running:        running,
		LockTime:       w.cfg.LockTime,
		WorkerThreads:  w.cfg.WorkerThreads,
		HandlerThreads: w.cfg.HandlerThreads,
		Prefetch:       w.cfg.Prefetch,
		RenewLocks:     !w.cfg.NoLockRenewal,
		Stats:          w.Stats(),
	}
}

// Stats returns the worker's statistics.
func (w *Worker) Stats() WorkerStats { return w.stats.snapshot() }

// ResetStats forgets the worker's statistics.
func (w *Worker) ResetStats() { w.stats.reset() }

// Queue returns the name of the worker's queue.
func (w *Worker) Queue() string { return w.queue }

// runScheduler runs the worker's scheduler (scheduler.go) until ctx ends,
// unless WorkerConfig.NoScheduler, and answers a channel closed once it
// returned.
func (w *Worker) runScheduler(ctx context.Context) chan struct{} {
	done := make(chan struct{})
	if w.cfg.NoScheduler {
		close(done)
		return done
	}
	s := &Scheduler{c: w.c, queue: w.queue, cfg: SchedulerConfig{CatchUp: w.cfg.ScheduleCatchUp}, log: w.log}
	if obs, ok := w.cfg.Observer.(TickObserver); ok {
		s.cfg.OnTick = obs.ObserveTick
	}
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	return done
}

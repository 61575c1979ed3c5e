package mq

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
)

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

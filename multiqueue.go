package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gocarmine/mq/internal/engine"
)

// QueueOrder is how a [MultiWorker] shares its handler threads among its
// queues: [Strict] or [Weighted].
type QueueOrder interface {
	queueWeights() (qs []QueueWeight, strict bool)
}

// Strict lists a multi-queue worker's queues, first the most urgent: a
// queue is polled only while every queue before it came back empty (its
// polling loops sleep at the end of the queue, or it is paused), so that
// under a backlog in every queue the first is drained before the second is
// touched. A message of a later queue taken before an earlier one woke is
// handled: it is not given back. A queue whose polls fail (its Redis
// away) counts as busy, and holds the later ones back meanwhile.
type Strict []string

func (s Strict) queueWeights() ([]QueueWeight, bool) {
	qs := make([]QueueWeight, len(s))
	for i, q := range s {
		qs[i] = QueueWeight{Queue: q, Weight: 1}
	}
	return qs, true
}

// Weighted lists a multi-queue worker's queues with their weights: while
// every queue has messages, each holds a share of the worker's messages
// (its handler threads, and its prefetch) by its weight, at least one. A
// queue that came back empty lends its share to the others until it has
// messages again; it gets it back as their messages finish.
type Weighted []QueueWeight

func (w Weighted) queueWeights() ([]QueueWeight, bool) { return w, false }

// QueueWeight is a queue of a [Weighted] multi-queue worker, with its
// weight, 1 or more.
type QueueWeight struct {
	Queue  string `json:"queue"`
	Weight int    `json:"weight,omitempty"`
}

// MultiWorker is one worker over several queues, sharing one set of
// handler threads: WorkerConfig.HandlerThreads (and its Prefetch) for all
// the queues together, in strict or weighted order (see [QueueOrder]).
// Each queue has its own polling loops (WorkerThreads per queue), its
// own statistics (Info), its own entry among the queue's live workers
// (Inspector.Workers, which tells the worker's queues) and its own
// scheduler; a queue paused (Inspector.PauseQueue) is skipped, and does
// not hold the others back. The Handler sees each message's queue in
// Message.Queue.
//
// Its lifecycle is a Worker's: Start, Stop by a deadline (which stops the
// polls of every queue, then waits for every handling), Close at once.
// Its methods are safe for concurrent use.
type MultiWorker struct {
	c       *Client
	queues  []QueueWeight
	strict  bool
	workers []*Worker // one per queue, in order
	pool    *engine.Pool
	threads int // handler threads, for all the queues

	mu      sync.Mutex
	running bool
	cur     *multiRun // the current or last run
}

// multiRun is what a MultiWorker's workers share in one run: the
// deliveries channel and the handler threads that take from it.
type multiRun struct {
	deliveries     chan engine.Delivery
	executor       *engine.Executor
	handlersCtx    context.Context
	cancelHandlers context.CancelFunc
	// stopPolling ends polling for the handler threads: from then on
	// they give back what they have not started.
	stopPolling context.CancelFunc
	// fetchers counts the workers whose polling loops have not all
	// returned: the last one's end closes deliveries.
	fetchers sync.WaitGroup
}

// NewMultiWorker returns a worker over the queues of order, not yet
// started, with cfg (copied; its Handler is required) for every queue:
// HandlerThreads and Prefetch are the whole worker's, WorkerThreads each
// queue's.
//
//	w, err := client.NewMultiWorker(mq.Weighted{{"mail", 3}, {"reports", 1}}, cfg)
//	w, err := client.NewMultiWorker(mq.Strict{"urgent", "default"}, cfg)
func (c *Client) NewMultiWorker(order QueueOrder, cfg *WorkerConfig) (*MultiWorker, error) {
	if order == nil {
		return nil, fmt.Errorf("%w: no queue order", ErrInvalidOption)
	}
	qs, strict := order.queueWeights()
	if len(qs) == 0 {
		return nil, fmt.Errorf("%w: no queues", ErrInvalidOption)
	}
	seen := make(map[string]bool, len(qs))
	for _, q := range qs {
		if err := ValidateQueueName(q.Queue); err != nil {
			return nil, err
		}
		if seen[q.Queue] {
			return nil, fmt.Errorf("%w: queue %q listed twice", ErrInvalidOption, q.Queue)
		}
		seen[q.Queue] = true
		if q.Weight < 1 {
			return nil, fmt.Errorf("%w: queue %q has weight %d, under 1", ErrInvalidOption, q.Queue, q.Weight)
		}
	}
	m := &MultiWorker{c: c, queues: append([]QueueWeight(nil), qs...), strict: strict}
	rooms := make([]*engine.Room, len(qs))
	weights := make([]int, len(qs))
	for i, q := range m.queues {
		w, err := c.NewWorker(q.Queue, cfg)
		if err != nil {
			return nil, err
		}
		w.multi = m
		w.lane = &engine.Lane{Handler: (*workerHandler)(w), Events: (*workerHandler)(w),
			Store: (*queueStore)(w), Room: w.room, Completer: w.completer, Watcher: w.cancelWatcher}
		m.workers = append(m.workers, w)
		rooms[i], weights[i] = w.room, q.Weight
	}
	m.threads = m.workers[0].cfg.HandlerThreads
	m.pool = engine.NewPool(strict, rooms, weights)
	return m, nil
}

// Queues answers the worker's queues, in order, with their weights (1
// each in strict order).
func (m *MultiWorker) Queues() []QueueWeight { return append([]QueueWeight(nil), m.queues...) }

// Strict tells whether the worker's order is strict.
func (m *MultiWorker) Strict() bool { return m.strict }

// Workers answers the worker of each queue, in order, to read (Stats,
// Info, ID, Subscribe) or to hand to what takes a *Worker (mqprom's
// WorkerCollector.Add). Their Start answers an error, and their Stop and
// Close stop the whole MultiWorker: the queues share their handlers.
func (m *MultiWorker) Workers() []*Worker { return append([]*Worker(nil), m.workers...) }

// Info describes each queue's part of the worker now, in order: its
// settings and its statistics.
func (m *MultiWorker) Info() []WorkerInfo {
	out := make([]WorkerInfo, len(m.workers))
	for i, w := range m.workers {
		out[i] = w.Info()
	}
	return out
}

// Start starts the worker: the polling loops of every queue and the
// shared handler threads, and returns. It answers ErrWorkerRunning when
// the worker runs already; see Worker.Start.
func (m *MultiWorker) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running && m.anyRunning() {
		return ErrWorkerRunning
	}
	if prev := m.cur; prev != nil {
		// The last run's handlings are still ending (a Stop cut short).
		select {
		case <-prev.executor.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	polling, stopPolling := context.WithCancel(base)
	context.AfterFunc(ctx, stopPolling)
	r := &multiRun{
		deliveries: make(chan engine.Delivery, m.threads+max(0, m.workers[0].cfg.Prefetch)),
		executor: engine.NewExecutor(engine.ExecutorConfig{
			HandlerThreads: m.threads,
			NoLockRenewal:  m.workers[0].cfg.NoLockRenewal,
		}),
		stopPolling: stopPolling,
	}
	r.handlersCtx, r.cancelHandlers = context.WithCancel(base)
	// The handler threads give back what is taken once every queue's
	// polling stopped: the last fetcher to end ends polling for them.
	r.fetchers.Add(len(m.workers))
	go func() {
		r.fetchers.Wait()
		stopPolling()
		close(r.deliveries)
	}()
	m.cur = r
	m.pool.Reset(m.workers[0].cfg.WorkerThreads)
	r.executor.Start(r.handlersCtx, polling, r.deliveries)
	for i, w := range m.workers {
		if err := w.start(ctx); err != nil {
			for range len(m.workers) - i {
				r.fetchers.Done() // never started
			}
			var errs []error
			closeCtx, cancel := context.WithTimeout(context.Background(), closeGrace)
			for _, started := range m.workers[:i] {
				if err := started.stop(closeCtx, true); !errors.Is(err, context.DeadlineExceeded) {
					errs = append(errs, err)
				}
			}
			cancel()
			return errors.Join(append([]error{err}, errs...)...)
		}
	}
	m.running = true
	return nil
}

// Stop stops polling every queue, gives back the messages no handler has
// started, and waits for the handlings in flight and the recording of
// their outcomes; see Worker.Stop. The handlings a stop cut short
// abandons are counted in the statistics of one of the queues.
func (m *MultiWorker) Stop(ctx context.Context) error { return m.stop(ctx, false) }

// Close stops the worker without waiting for its handlers; see
// Worker.Close.
func (m *MultiWorker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	err := m.stop(ctx, true)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func (m *MultiWorker) stop(ctx context.Context, now bool) error {
	m.mu.Lock()
	m.running = false
	r := m.cur
	m.mu.Unlock()
	if r == nil {
		return nil
	}
	r.stopPolling()
	errs := make([]error, len(m.workers))
	var wg sync.WaitGroup
	for i, w := range m.workers {
		wg.Go(func() { errs[i] = w.stop(ctx, now) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// anyRunning tells whether any queue's worker still runs: Client.Close
// stops them one by one, without the multi-queue worker.
func (m *MultiWorker) anyRunning() bool {
	for _, w := range m.workers {
		w.mu.Lock()
		running := w.run != nil && w.run.running
		w.mu.Unlock()
		if running {
			return true
		}
	}
	return false
}

package mqtest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gocarmine/mq"
)

// Result is what a [Drain] did: every handling, in the order they ran.
type Result struct {
	// Handlings are the handlings, as a worker's Observer is told of them
	// (mq.Handling: id, attempt, outcome, the handler's answer).
	Handlings []mq.Handling
}

// Count returns how many handlings ended with outcome.
func (r Result) Count(outcome mq.Outcome) int {
	n := 0
	for _, h := range r.Handlings {
		if h.Outcome == outcome {
			n++
		}
	}
	return n
}

// IDs returns the ids of the handlings that ended with outcome, in the
// order they ran (an id handled twice is there twice).
func (r Result) IDs(outcome mq.Outcome) []string {
	var ids []string
	for _, h := range r.Handlings {
		if h.Outcome == outcome {
			ids = append(ids, h.ID)
		}
	}
	return ids
}

// Drain runs the messages of queue that are ready through h, one at a
// time, with the default worker config: see [DrainWith].
func Drain(ctx context.Context, c *mq.Client, queue string, h mq.Handler) (Result, error) {
	return DrainWith(ctx, c, queue, mq.WorkerConfig{Handler: h})
}

// DrainWith runs the messages of queue that are ready through cfg.Handler,
// one at a time, on the caller's goroutine (a handler may call t.Fatal),
// until the queue holds none ready and none being handled, and returns
// every handling with its outcome.
//
// It runs a real mq.Worker for the queue, so each outcome is recorded in
// Redis as a worker records it: a success removes the message (or keeps it
// in its dedupe window), an error or a Retry puts it in backoff, a final
// error or the last attempt makes it a dead letter. A message in backoff
// is not ready, so it stays in the queue and Drain does not wait for it: a
// test asserts it with [RequireEnqueued] (InBackoff), or answers Retry(0)
// to have it handled again at once. A paused queue has nothing ready.
//
// cfg's policy fields (MaxAttempts, RetryBackoff, LockTime, Observer, ...)
// are the worker's; Drain sets its own WorkerThreads, HandlerThreads,
// Prefetch (off), Throttle (none), EndOfQueueBackoff and Monitor, and
// runs no scheduler. A panic in the handler is an error, as in a worker.
// Drain returns ctx's error, with what was handled so far, when ctx ends
// first.
func DrainWith(ctx context.Context, c *mq.Client, queue string, cfg mq.WorkerConfig) (Result, error) {
	if cfg.Handler == nil {
		return Result{}, fmt.Errorf("mqtest: drain %q: %w: no handler", queue, mq.ErrInvalidOption)
	}
	h := cfg.Handler
	calls := make(chan call)
	dry := make(chan struct{}, 1)

	var mu sync.Mutex
	var res Result
	observer := cfg.Observer
	cfg.Observer = mq.ObserverFunc(func(hd mq.Handling) {
		mu.Lock()
		res.Handlings = append(res.Handlings, hd)
		mu.Unlock()
		if observer != nil {
			observer.ObserveHandling(hd)
		}
	})
	cfg.Handler = mq.HandlerFunc(func(hctx context.Context, msg *mq.Message) error {
		cl := call{ctx: hctx, msg: msg, reply: make(chan error, 1)}
		select {
		case calls <- cl:
		case <-hctx.Done():
			return context.Cause(hctx)
		}
		select {
		case err := <-cl.reply:
			return err
		case <-hctx.Done():
			return context.Cause(hctx)
		}
	})
	cfg.Monitor = func(_ context.Context, info mq.MonitorInfo) {
		if info.Slept && info.Handled == 0 {
			select {
			case dry <- struct{}{}:
			default:
			}
		}
	}
	cfg.WorkerThreads, cfg.HandlerThreads, cfg.Prefetch = 1, 1, -1
	cfg.Throttle = nil
	cfg.EndOfQueueBackoff = mq.Constant(0) // counts as the least sleep, 10 ms
	cfg.NoScheduler = true

	w, err := c.NewWorker(queue, &cfg)
	if err != nil {
		return Result{}, fmt.Errorf("mqtest: drain %q: %w", queue, err)
	}
	if err := w.Start(ctx); err != nil {
		return Result{}, fmt.Errorf("mqtest: drain %q: %w", queue, err)
	}
	// Should the handler end this goroutine (t.FailNow), the worker must
	// not wait for it: Close cancels the handling left waiting here.
	stopped := false
	defer func() {
		if !stopped {
			_ = w.Close()
		}
	}()

	result := func() Result {
		mu.Lock()
		defer mu.Unlock()
		return Result{Handlings: append([]mq.Handling(nil), res.Handlings...)}
	}
	var ended error
loop:
	for {
		select {
		case cl := <-calls:
			cl.reply <- handle(h, cl)
		case <-dry:
			// A poll found nothing ready; the outcome of the last handling
			// may still be on its way to Redis, so ask the counts.
			n, err := c.Inspector().QueueCounts(ctx, queue)
			if err != nil {
				ended = fmt.Errorf("mqtest: drain %q: %w", queue, err)
				break loop
			}
			if (n.Queued == 0 || n.Paused) && n.Locked == 0 {
				break loop
			}
		case <-ctx.Done():
			ended = fmt.Errorf("mqtest: drain %q: %w", queue, context.Cause(ctx))
			break loop
		}
	}

	// Stop the worker, handling here whatever it took meanwhile, so that
	// nothing is left locked.
	done := make(chan error, 1)
	go func() { done <- w.Stop(context.WithoutCancel(ctx)) }()
	for {
		select {
		case cl := <-calls:
			cl.reply <- handle(h, cl)
		case err := <-done:
			stopped = true
			if err != nil && ended == nil {
				ended = fmt.Errorf("mqtest: drain %q: stop worker: %w", queue, err)
			}
			return result(), ended
		}
	}
}

// call is one handling handed from the worker to the draining goroutine.
type call struct {
	ctx   context.Context
	msg   *mq.Message
	reply chan error
}

// errPanic marks a handler's panic turned into its error.
var errPanic = errors.New("mqtest: handler panicked")

// handle runs h on one call, a panic made an error.
func handle(h mq.Handler, cl call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	return h.Handle(cl.ctx, cl.msg)
}

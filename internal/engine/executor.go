package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// minStaleWait is the least wait that makes a taken message stale: with
// tiny lock times, a hand-off's own delay must not send every message
// back.
const minStaleWait = 10 * time.Millisecond

// Delivery is a message taken by a poll, on its way from the fetcher to a
// handler.
type Delivery struct {
	Step      protocol.Step
	QueueSize int64
	Sent      time.Time // when the poll was sent: the lock runs out no sooner than its lock time after
	Received  time.Time // when the poll's reply came
	Result    []byte    // the result the handler gave, for a success (set by the root package's Handle)
	// Lane is the queue the message came from, when the executor is
	// shared by several queues' fetchers (a multi-queue worker); nil
	// for the executor's own (ExecutorConfig).
	Lane *Lane
}

// Lane is one queue's side of an executor: where a delivery's handling,
// renewals and outcome go. An executor has its own, from its config; an
// executor shared by several queues' fetchers (Pool) takes each
// delivery's from the delivery.
type Lane struct {
	Handler   Handler
	Events    ExecutorEvents
	Store     Store // for lock renewals
	Room      *Room // freed as messages are done with
	Completer Adder // where outcomes go: the completer
	// Watcher, when set, answers a handler thread's watcher of the
	// queue's messages (see ExecutorConfig.Watcher).
	Watcher func() CancelWatcher
}

// CancelWatcher watches for cancels, from other processes, of the messages
// one handler thread handles (docs/protocol.md §20), handling after
// handling: it is made once per thread and queue, so that a handling's
// watch costs neither a lock shared with other threads nor an allocation.
type CancelWatcher interface {
	// Watch watches the message of step s until Unwatch: its cancel calls
	// cancel with ErrCancelled, at once if it was heard already.
	Watch(s *protocol.Step, cancel context.CancelCauseFunc)
	// Unwatch ends the watch of the handling that ended.
	Unwatch()
	// Close releases the watcher once its thread is done.
	Close()
}

// threadWatchers are a handler thread's cancel watchers, one per lane it
// served (a shared executor's thread serves several lanes).
type threadWatchers struct {
	lanes    []*Lane
	watchers []CancelWatcher
}

// of answers the thread's watcher of ln's messages, nil when ln watches
// none.
func (t *threadWatchers) of(ln *Lane) CancelWatcher {
	if ln.Watcher == nil {
		return nil
	}
	for i, l := range t.lanes {
		if l == ln {
			return t.watchers[i]
		}
	}
	w := ln.Watcher()
	t.lanes, t.watchers = append(t.lanes, ln), append(t.watchers, w)
	return w
}

func (t *threadWatchers) close() {
	for _, w := range t.watchers {
		w.Close()
	}
}

// stale tells whether a delivery should go back rather than to a handler:
// it waited in the worker over a quarter of its lock time (and
// minStaleWait), or the poll took so long that under a quarter of the lock
// time is left (the handler would soon have its context ended).
func (d *Delivery) stale() bool {
	lt := d.Step.LockTime
	return time.Since(d.Received) > max(lt/4, minStaleWait) || time.Since(d.Sent) > lt-lt/4
}

// Handler is the user's handler as the executor runs it: the root package
// builds the public message and maps the answer to an outcome.
type Handler interface {
	// Handle runs the handler on d, within ctx, and answers its answer (a
	// panic's included).
	Handle(ctx context.Context, d *Delivery, lock *Lock) error
	// Settle turns a handling that ended into the outcome to record, its
	// LockedUntil left to the executor; ok is false when none is to be
	// recorded: the handling was abandoned (by a stop cut short, or the
	// handler failing after ctx ended), its message left locked. It is
	// called once per handling, after Handle returned.
	Settle(ctx context.Context, d *Delivery, err error, took time.Duration, abandoned bool) (p Pending, ok bool)
}

// ExecutorEvents is what an executor tells its worker, for its stats and
// logs, besides the outcomes it hands the completer.
type ExecutorEvents interface {
	// Released: a message taken was given back unhandled.
	Released(d *Delivery)
	// LockRenewed: a running handling's lock was pushed forward.
	LockRenewed(d *Delivery)
	// RenewFailed: a renewal failed; err is ErrLockLost when the lock was
	// lost, and the handling is then cancelled.
	RenewFailed(d *Delivery, err error)
}

// Adder is all the executor needs of the completer (a *Completer): it
// hands in outcomes, and never hears back.
type Adder interface {
	Add(p Pending)
}

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	HandlerThreads int
	NoLockRenewal  bool
	Handler        Handler
	Events         ExecutorEvents
	Store          Store // for lock renewals
	Room           *Room // freed as messages are done with
	Completer      Adder // where outcomes go: the completer
	// Watcher, when set, answers a watcher of cancels from other
	// processes (docs/protocol.md §20) for one handler thread: the thread
	// watches each handling's message while it runs, and a cancel ends
	// the handling with cause ErrCancelled.
	Watcher func() CancelWatcher
	// RenewEvery is how often a running handling's lock is renewed; 0 for
	// every third of the message's lock time, the default (other periods
	// are for tests, see renewer).
	RenewEvery time.Duration
}

// Handler thread states (Executor.handlings).
const (
	handlingIdle int32 = iota
	handlingRunning
	handlingAbandoned // by a stop cut short, which counted it
)

// Executor runs the handler threads of one run of a worker: each takes
// deliveries from the fetcher, holds the message's lock (renewing it, and
// cancelling the handling when it could have run out), runs the handler,
// and hands its outcome to the completer. Messages that went stale on
// their way, or that arrive once polling stopped, are given back.
type Executor struct {
	cfg ExecutorConfig
	// handlings holds each handler thread's state, so that a stop cut
	// short can count the handlings it abandons, and their handlers
	// learn it.
	handlings []atomic.Int32
	done      chan struct{}
	own       Lane // from cfg
}

// NewExecutor returns an executor, not yet started.
func NewExecutor(cfg ExecutorConfig) *Executor {
	return &Executor{cfg: cfg, handlings: make([]atomic.Int32, cfg.HandlerThreads), done: make(chan struct{}),
		own: Lane{Handler: cfg.Handler, Events: cfg.Events, Store: cfg.Store, Room: cfg.Room, Completer: cfg.Completer,
			Watcher: cfg.Watcher}}
}

// lane is where d's handling goes: its own lane, else the executor's.
func (x *Executor) lane(d *Delivery) *Lane {
	if d.Lane != nil {
		return d.Lane
	}
	return &x.own
}

// Start starts the handler threads: they handle deliveries until it is
// closed and drained, with contexts derived from base; once polling has
// ended, messages not yet started are given back instead. Done is closed
// when every thread returned.
func (x *Executor) Start(base, polling context.Context, deliveries <-chan Delivery) {
	var threads sync.WaitGroup
	for i := range x.handlings {
		threads.Go(func() { x.thread(base, polling, deliveries, &x.handlings[i]) })
	}
	go func() {
		threads.Wait()
		close(x.done)
	}()
}

// Done is closed once every handler thread returned.
func (x *Executor) Done() <-chan struct{} { return x.done }

// Busy answers how many handler threads run a handler now.
func (x *Executor) Busy() int {
	n := 0
	for i := range x.handlings {
		if x.handlings[i].Load() == handlingRunning {
			n++
		}
	}
	return n
}

// Abandon marks every handling still running abandoned, for a stop cut
// short, and answers how many it marked: their outcomes will not be
// recorded.
func (x *Executor) Abandon() int {
	n := 0
	for i := range x.handlings {
		if x.handlings[i].CompareAndSwap(handlingRunning, handlingAbandoned) {
			n++
		}
	}
	return n
}

func (x *Executor) thread(base, polling context.Context, deliveries <-chan Delivery, state *atomic.Int32) {
	expiry := newLockExpiry()
	defer expiry.stop()
	var renew *renewer
	if !x.cfg.NoLockRenewal {
		renew = newRenewer(x.cfg.RenewEvery)
		defer renew.stop()
	}
	var watchers threadWatchers
	defer watchers.close()
	// The thread's handlings derive their contexts from its own, so
	// that they do not all register with base's, under one lock.
	base, cancel := context.WithCancel(base)
	defer cancel()
	// d serves handling after handling (nothing keeps it past its
	// handling): one allocation per thread rather than per message.
	var d Delivery
	for d = range deliveries {
		if polling.Err() != nil || d.stale() {
			x.GiveBack(d)
			continue
		}
		took, lapsed := x.handle(base, &d, expiry, renew, &watchers, state)
		room := x.lane(&d).Room
		room.handled(took)
		room.finishDelivery(&d, lapsed)
	}
}

// GiveBack returns a message taken but not handled (docs/protocol.md §6;
// fencing, §7, applies: if the lock was lost meanwhile, nothing changes).
func (x *Executor) GiveBack(d Delivery) {
	ln := x.lane(&d)
	ln.Events.Released(&d)
	ln.Completer.Add(Pending{
		Completion: protocol.Completion{ID: d.Step.ID, LockedUntil: d.Step.LockedUntil, Outcome: protocol.OutcomeRelease},
		Attempt:    d.Step.Attempt,
	})
	ln.Room.finishDelivery(&d, false)
}

// handle runs the handler on one message and hands in its outcome, unless
// a stop cut short abandoned the handling meanwhile (state). It answers
// how long the handler took, and whether its lock lapsed (ran out, or was
// lost) while it ran (Room.lapse). The thread's renew, nil without
// renewals, renews the lock while the handler runs, and its watchers
// watch for a cancel of the message.
func (x *Executor) handle(base context.Context, d *Delivery, expiry *lockExpiry, renew *renewer, watchers *threadWatchers, state *atomic.Int32) (time.Duration, bool) {
	s := &d.Step
	ln := x.lane(d)
	ctx, cancelCtx := context.WithCancelCause(base)
	defer cancelCtx(nil)
	// lapse: 0 while the handling runs, 1 once its lock lapsed, 2 once it
	// ended first.
	var lapse atomic.Int32
	cancel := func(cause error) {
		if (errors.Is(cause, ErrLockExpired) || errors.Is(cause, ErrLockLost)) && lapse.CompareAndSwap(0, 1) {
			ln.Room.lapse(d)
		}
		cancelCtx(cause)
	}
	lock := newLock(ln.Store, s.ID, s.LockTime, s.LockedUntil, d.Sent.Add(s.LockTime), cancel, expiry)
	defer lock.over()
	if cw := watchers.of(ln); cw != nil { // (the delivery's queue's: a shared executor has none of its own)
		cw.Watch(s, cancel)
		defer cw.Unwatch()
	}

	if renew != nil {
		renew.start(ctx, d, lock, ln.Events)
	}

	state.Store(handlingRunning)
	start := time.Now()
	hctx := ctx
	if s.Policy != nil && s.Policy.Timeout > 0 {
		// The message's own hard deadline (docs/protocol.md §14): it ends
		// the handler's context however the renewals above go on, and the
		// handling has failed, whatever the handler answers after it.
		var hcancel context.CancelFunc
		hctx, hcancel = context.WithTimeoutCause(ctx, s.Policy.Timeout, ErrHandlingTimeout)
		defer hcancel()
	}
	err := ln.Handler.Handle(hctx, d, lock)
	took := time.Since(start)
	if hctx != ctx && ctx.Err() == nil && errors.Is(context.Cause(hctx), ErrHandlingTimeout) {
		err = timeoutError{timeout: s.Policy.Timeout, answer: err}
	}
	abandoned := !state.CompareAndSwap(handlingRunning, handlingIdle)
	if renew != nil {
		renew.end()
	}
	p, ok := ln.Handler.Settle(ctx, d, err, took, abandoned)
	if ok {
		p.LockedUntil = lock.token()
		ln.Completer.Add(p)
	}
	return took, !lapse.CompareAndSwap(0, 2)
}

// timeoutError is the failure of a handling that ran past its message's
// Timeout: it wraps ErrHandlingTimeout, and its text tells what the
// handler answered.
type timeoutError struct {
	timeout time.Duration
	answer  error
}

func (e timeoutError) Error() string {
	if e.answer == nil {
		return fmt.Sprintf("%v after %v", ErrHandlingTimeout, e.timeout)
	}
	return fmt.Sprintf("%v after %v: %v", ErrHandlingTimeout, e.timeout, e.answer)
}

// Unwrap answers ErrHandlingTimeout alone: the handler's answer, which
// may be a success or a retry of its own, no longer counts.
func (e timeoutError) Unwrap() error { return ErrHandlingTimeout }

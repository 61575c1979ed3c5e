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
	// Watch, when set, watches for cancels of the queue's message of
	// step s (see ExecutorConfig.Watch).
	Watch func(s *protocol.Step, cancel context.CancelCauseFunc) (unwatch func())
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
	// Watch, when set, watches for cancels of the message of step s from
	// other processes while it is handled (docs/protocol.md §20): cancel
	// ends the handling with cause ErrCancelled; the handling calls the
	// answered function when it ends.
	Watch func(s *protocol.Step, cancel context.CancelCauseFunc) (unwatch func())
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
			Watch: cfg.Watch}}
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
	for d := range deliveries {
		if polling.Err() != nil || d.stale() {
			x.GiveBack(d)
			continue
		}
		took, lapsed := x.handle(base, &d, expiry, state)
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
// lost) while it ran (Room.lapse).
func (x *Executor) handle(base context.Context, d *Delivery, expiry *lockExpiry, state *atomic.Int32) (time.Duration, bool) {
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
	if ln.Watch != nil { // (the delivery's queue's: a shared executor has none of its own)
		defer ln.Watch(s, cancel)()
	}

	var renewWG sync.WaitGroup
	var renewDone chan struct{}
	if !x.cfg.NoLockRenewal {
		renewDone = make(chan struct{})
		renewWG.Add(1)
		go func() {
			defer renewWG.Done()
			x.renewLoop(ctx, d, lock, renewDone)
		}()
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
	if renewDone != nil {
		close(renewDone)
		renewWG.Wait()
	}
	p, ok := ln.Handler.Settle(ctx, d, err, took, abandoned)
	if ok {
		p.LockedUntil = lock.token()
		ln.Completer.Add(p)
	}
	return took, !lapse.CompareAndSwap(0, 2)
}

// renewLoop pushes lock forward every third of its lock time until done is
// closed or ctx ends. Should renewals fail, the lock's own timer cancels
// the handling when the lock runs out (Lock); when a renewal finds the
// lock lost, it cancels the handling at once.
func (x *Executor) renewLoop(ctx context.Context, d *Delivery, lock *Lock, done <-chan struct{}) {
	events := x.lane(d).Events
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
		err := lock.Renew(rctx)
		rcancel()
		switch {
		case err == nil:
			events.LockRenewed(d)
		case errors.Is(err, ErrLockLost):
			// Not counted here: the handling is counted once, as lock-lost
			// when its outcome is fenced, or as abandoned.
			events.RenewFailed(d, err)
			return
		case ctx.Err() != nil:
			return
		default:
			events.RenewFailed(d, err)
		}
	}
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

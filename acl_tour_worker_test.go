package mq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/keys"
)

// worker runs a worker through every outcome, a requeue, a sleep and its
// wake-up, and a stop that gives back prefetched messages, on a queue with
// every limit (docs/protocol.md §19) set and each message a limit key:
// slots taken and freed, rate tokens taken, a key's token reserved (a
// second handling of one key within its period), a message parked for want
// of its key's slot and moved back when the slot is freed, slots freed by
// a stop's release.
func (a *aclTour) worker() error {
	ctx, c, q := a.ctx, a.c, "acl:worker"
	err := c.Inspector().SetLimits(ctx, q, Limits{
		Rate:    Rate{N: 1000, Per: time.Second, Burst: 100},
		KeyRate: Rate{N: 5, Per: time.Second}, // a key's second hand-out waits 200 ms
		// Room for the prefetched messages; one per key, so that a second
		// message of a key being handled is parked.
		Concurrency: 64, KeyConcurrency: 1,
	})
	if err := a.check("SetLimits of the worker's queue", err, true, nil); err != nil {
		return err
	}
	// Sleep sentinels pushed by another writer, in both lists: the first
	// end-of-queue sleep leaves one.
	for k, n := range map[keys.Index]int{keys.ISleepA: 4, keys.ISleepB: 2} {
		for range n {
			if err := a.check("LPUSH sentinels (admin)", a.admin.LPush(ctx, keys.Key(q, false, k), "_").Err(), true, nil); err != nil {
				return err
			}
		}
	}
	var mu sync.Mutex
	finished := map[string]int{}
	done := func(ids ...string) func() (bool, error) {
		return func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if finished[id] == 0 {
					return false, nil
				}
			}
			return true, nil
		}
	}
	holding := make(chan string, 1) // the id a handler holds, waiting for the tour
	requeued := make(chan struct{}) // closed once the held message has a requeue
	released := make(chan struct{}) // closed once the stop gave messages back
	openRequeued := sync.OnceFunc(func() { close(requeued) })
	openReleased := sync.OnceFunc(func() { close(released) })
	defer openRequeued() // so that no handler is left waiting when the tour fails
	defer openReleased()
	hold := func(ctx context.Context, id string, until <-chan struct{}) {
		select {
		case holding <- id:
		default:
		}
		select {
		case <-until:
		case <-ctx.Done():
		}
	}
	handler := HandlerFunc(func(ctx context.Context, m *Message) error {
		mu.Lock()
		before := finished[m.ID]
		mu.Unlock()
		defer func() {
			mu.Lock()
			finished[m.ID]++
			mu.Unlock()
		}()
		switch {
		case m.ID == "retry" && m.Attempt == 1:
			return Retry(time.Millisecond)
		case m.ID == "backoff":
			return SucceedWithBackoff(time.Hour)
		case m.ID == "fail":
			return Final(errors.New("the tour's handler fails, as asked"))
		case m.ID == "requeue" && before == 0:
			hold(ctx, m.ID, requeued)
		case strings.HasPrefix(m.ID, "held-"):
			hold(ctx, m.ID, released)
		}
		return nil
	})
	w, err := c.StartWorker(ctx, q, &WorkerConfig{
		Handler:           handler,
		LockTime:          time.Minute, // long enough to prefetch
		EndOfQueueBackoff: Constant(100 * time.Millisecond),
	})
	if err := a.check("StartWorker", err, true, nil); err != nil {
		return err
	}
	defer w.Close()
	if err := a.wait("the worker listed by its heartbeat", func() (bool, error) {
		ws, err := c.Inspector().Workers(ctx, q)
		return len(ws) == 1 && ws[0].ID == w.ID(), err
	}); err != nil {
		return err
	}

	reqs := func(ids ...string) []EnqueueRequest {
		rs := make([]EnqueueRequest, len(ids))
		for i, id := range ids {
			rs[i] = EnqueueRequest{Message: id, Options: &EnqueueOptions{MessageID: id, LimitKey: id}}
		}
		return rs
	}
	numbered := func(prefix string, n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%02d", prefix, i)
		}
		return ids
	}
	status := func(id string, want MessageStatus) func() (bool, error) {
		return func() (bool, error) {
			st, err := c.Inspector().MessageStatus(ctx, q, id)
			return st == want, err
		}
	}

	// Every outcome.
	ids := append(numbered("warm", 4), "retry", "backoff", "fail")
	if _, err := c.EnqueueMany(ctx, q, reqs(ids...)...); err != nil {
		return a.check("EnqueueMany to the worker", err, true, nil)
	}
	if err := a.wait("success, retry, backoff and error outcomes", func() (bool, error) {
		ok, _ := done(ids...)()
		mu.Lock()
		defer mu.Unlock()
		return ok && finished["retry"] == 2, nil
	}); err != nil {
		return err
	}
	if err := a.wait("the backoff outcome to be recorded", status("backoff", StatusDoneWithBackoff)); err != nil {
		return err
	}
	r, err := c.Enqueue(ctx, q, "again", &EnqueueOptions{MessageID: "backoff"})
	if err := a.check("Enqueue of an id in backoff", err, errors.Is(r.Refused, ErrBackoff), r); err != nil {
		return err
	}

	// The failed message's dead letter: listed, read, requeued (it fails
	// again), deleted.
	if err := a.wait("the dead letter", func() (bool, error) {
		p, err := c.Inspector().DeadLetters(ctx, q, "", 10)
		return len(p.Items) == 1, err
	}); err != nil {
		return err
	}
	d, err := c.Inspector().DeadLetter(ctx, q, "fail")
	if err := a.check("DeadLetter", err, d.Reason == OutcomeDead, d); err != nil {
		return err
	}
	n, _, err := c.Inspector().RequeueDeadLetters(ctx, q, nil)
	if err := a.check("RequeueDeadLetters", err, n == 1, n); err != nil {
		return err
	}
	if err := a.wait("the requeued dead letter failing again", func() (bool, error) {
		p, err := c.Inspector().DeadLetters(ctx, q, "", 10)
		return len(p.Items) == 1, err
	}); err != nil {
		return err
	}
	dn, err := c.Inspector().DeleteDeadLetters(ctx, q)
	if err := a.check("DeleteDeadLetters", err, dn == 1, dn); err != nil {
		return err
	}

	// A requeue of a message being handled; another message of its limit
	// key parked meanwhile.
	if _, err := c.Enqueue(ctx, q, "requeue", &EnqueueOptions{MessageID: "requeue", LimitKey: "shared"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	select {
	case <-holding:
	case <-ctx.Done():
		return a.check("waiting for the requeue's first handling", ctx.Err(), false, nil)
	}
	r, err = c.Enqueue(ctx, q, "requeue again", &EnqueueOptions{MessageID: "requeue", CanRequeue: true, LimitKey: "shared"})
	if err := a.check("Enqueue with CanRequeue of a locked id", err, r.Action == ActionAdded, r); err != nil {
		return err
	}
	if err := a.wait("the requeue to be pending", status("requeue", StatusLockedWithRequeue)); err != nil {
		return err
	}
	if _, err := c.Enqueue(ctx, q, "parked", &EnqueueOptions{MessageID: "parked", LimitKey: "shared"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	if err := a.wait("a message parked for want of its key's slot", func() (bool, error) {
		st, err := c.Inspector().Limits(ctx, q)
		return st.Parked == 1, err
	}); err != nil {
		return err
	}
	openRequeued()
	if err := a.wait("the requeued message handled again, and the parked one", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return finished["requeue"] == 2 && finished["parked"] == 1, nil
	}); err != nil {
		return err
	}

	// The end-of-queue sleep, and an enqueue that ends it, after the
	// script cache was lost.
	if err := a.wait("the worker to sleep, in the sleep hub's BLMPOP", a.blockedIn("blmpop", "blmove")); err != nil {
		return err
	}
	if err := a.flushScripts(); err != nil {
		return err
	}
	if _, err := c.Enqueue(ctx, q, "wake", &EnqueueOptions{MessageID: "wake"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	if err := a.wait("the wake-up message handled", done("wake")); err != nil {
		return err
	}
	// A client in cluster mode has no sleep hub: its worker sleeps in a
	// BLMOVE of its own.
	if err := a.sleepOnItsOwn(); err != nil {
		return err
	}

	// Prefetched messages given back at a stop: quick handlings first, so
	// that the worker prefetches; then one handler holds a message while
	// others wait, taken, for a handler.
	warm := numbered("quick", 16)
	if _, err := c.EnqueueMany(ctx, q, reqs(warm...)...); err != nil {
		return a.check("EnqueueMany", err, true, nil)
	}
	if err := a.wait("quick handlings", done(warm...)); err != nil {
		return err
	}
	held := numbered("held", 8)
	if _, err := c.EnqueueMany(ctx, q, reqs(held...)...); err != nil {
		return a.check("EnqueueMany", err, true, nil)
	}
	var first string
	select {
	case first = <-holding:
	case <-ctx.Done():
		return a.check("waiting for a held handling", ctx.Err(), false, nil)
	}
	lockedWaiting := func() (bool, error) {
		content, err := c.Inspector().QueueContent(ctx, q)
		for _, m := range content {
			if strings.HasPrefix(m.ID, "held-") && m.ID != first && m.Status == StatusLocked {
				return true, err
			}
		}
		return false, err
	}
	if err := a.wait("a prefetched message waiting for the held handler", lockedWaiting); err != nil {
		return err
	}
	stopped, abortStop := a.startStop(w)
	defer abortStop()
	if err := a.wait("the stop to give back prefetched messages", func() (bool, error) {
		return w.Stats().Counts.Released > 0, nil
	}); err != nil {
		return err
	}
	openReleased()
	if err := a.wait("the stop", stopped); err != nil {
		return err
	}
	ws, err := c.Inspector().Workers(ctx, q)
	if err := a.check("Workers after the stop", err, len(ws) == 0, ws); err != nil {
		return err
	}
	content, err := c.Inspector().QueueContent(ctx, q)
	givenBack := 0
	for _, m := range content {
		if strings.HasPrefix(m.ID, "held-") && m.Status == StatusQueued && m.Attempts == 0 {
			givenBack++
		}
	}
	if err := a.check("QueueContent after the stop", err, givenBack > 0, content); err != nil {
		return err
	}
	st, err := c.Inspector().Limits(ctx, q)
	return a.check("Limits after the stop: every slot freed", err, st.SlotsHeld == 0 && st.Parked == 0, st)
}

// blockedIn answers a condition: a connection of the tour's user is
// blocked in one of cmds, as a sleeping worker is.
func (a *aclTour) blockedIn(cmds ...string) func() (bool, error) {
	return func() (bool, error) {
		list, err := a.admin.ClientList(a.ctx).Result()
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(list, "\n") {
			fields := map[string]string{}
			for _, f := range strings.Fields(line) {
				if k, v, ok := strings.Cut(f, "="); ok {
					fields[k] = v
				}
			}
			if fields["user"] == a.user && slices.Contains(cmds, fields["cmd"]) && strings.Contains(fields["flags"], "b") {
				return true, nil
			}
		}
		return false, nil
	}
}

// sleepOnItsOwn runs a worker of a cluster-mode client, which sleeps in a
// BLMOVE of its own, until an enqueue wakes it.
func (a *aclTour) sleepOnItsOwn() error {
	ctx, q := a.ctx, "acl:own-sleep"
	c, err := New(a.c.rdb, &Config{Cluster: true, Logger: a.c.log})
	if err := a.check("New in cluster mode", err, true, nil); err != nil {
		return err
	}
	handled := make(chan struct{}, 1)
	w, err := c.StartWorker(ctx, q, &WorkerConfig{
		EndOfQueueBackoff: Constant(time.Hour),
		Handler: HandlerFunc(func(context.Context, *Message) error {
			handled <- struct{}{}
			return nil
		}),
	})
	if err := a.check("StartWorker in cluster mode", err, true, nil); err != nil {
		return err
	}
	defer w.Close()
	if err := a.wait("the worker to sleep in BLMOVE", a.blockedIn("blmove")); err != nil {
		return err
	}
	if _, err := c.Enqueue(ctx, q, "wake", nil); err != nil {
		return a.check("Enqueue in cluster mode", err, true, nil)
	}
	return a.wait("the cluster-mode worker woken", func() (bool, error) {
		select {
		case <-handled:
			return true, nil
		default:
			return false, nil
		}
	})
}

// renewal runs a worker with lock renewal and a short lock time, and a
// handler that extends its lock itself too.
func (a *aclTour) renewal() error {
	ctx, c, q := a.ctx, a.c, "acl:renew"
	extended := make(chan error, 1)
	renewed := make(chan struct{}) // closed once the worker renewed the lock
	openRenewed := sync.OnceFunc(func() { close(renewed) })
	defer openRenewed()
	w, err := c.StartWorker(ctx, q, &WorkerConfig{
		LockTime: time.Second,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			select {
			case extended <- m.ExtendLock(ctx):
			default:
			}
			select {
			case <-renewed:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}),
	})
	if err := a.check("StartWorker", err, true, nil); err != nil {
		return err
	}
	defer w.Close()
	if _, err := c.Enqueue(ctx, q, "long", &EnqueueOptions{MessageID: "long"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	var extendErr error
	select {
	case extendErr = <-extended:
	case <-ctx.Done():
		extendErr = ctx.Err()
	}
	if err := a.check("Message.ExtendLock", extendErr, true, nil); err != nil {
		return err
	}
	if err := a.wait("the worker to renew the lock", func() (bool, error) {
		return w.Stats().Counts.LocksRenewed > 0, nil
	}); err != nil {
		return err
	}
	openRenewed()
	if err := a.wait("the success recorded", func() (bool, error) {
		st, err := c.Inspector().MessageStatus(ctx, q, "long") // done, or done and collected
		return st == StatusDoneAwaitingGC || st == StatusNone, err
	}); err != nil {
		return err
	}
	stopped, abortStop := a.startStop(w)
	defer abortStop()
	return a.wait("the stop", stopped)
}

// startStop starts w.Stop and answers a condition for wait that holds once
// it returned (failing with its error), and a func that cancels the stop
// and waits for it, so that a stop never outlives a failed tour.
func (a *aclTour) startStop(w *Worker) (stopped func() (bool, error), abort func()) {
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = w.Stop(ctx)
	}()
	stopped = func() (bool, error) {
		select {
		case <-done:
			return true, err
		default:
			return false, nil
		}
	}
	abort = func() {
		cancel()
		<-done
	}
	return stopped, abort
}

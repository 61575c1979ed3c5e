package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingHandler holds each message until its context ends, tells
// started of each, and answers success then (a late success: the cancel
// must win over it).
type blockingHandler struct {
	started chan string
	mu      sync.Mutex
	causes  map[string]error
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{started: make(chan string, 16), causes: map[string]error{}}
}

func (h *blockingHandler) Handle(ctx context.Context, m *Message) error {
	h.started <- m.ID
	<-ctx.Done()
	h.mu.Lock()
	h.causes[m.ID] = context.Cause(ctx)
	h.mu.Unlock()
	return nil
}

func (h *blockingHandler) cause(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.causes[id]
}

func waitStarted(t *testing.T, ch <-chan string, id string) {
	t.Helper()
	select {
	case got := <-ch:
		require.Equal(t, id, got)
	case <-time.After(eventTimeout):
		t.Fatalf("timed out waiting for %s to start", id)
	}
}

// TestCancelQueued: a queued message, in backoff or not, is deleted at
// once and never runs; an id the queue does not hold is answered so.
func TestCancelQueued(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	enqueue(t, c, q, "now", &EnqueueOptions{MessageID: "now"})
	enqueue(t, c, q, "later", &EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour})
	enqueue(t, c, q, "kept", &EnqueueOptions{MessageID: "kept"})

	for _, id := range []string{"now", "later"} {
		r, err := c.Cancel(ctx, q, id)
		require.NoError(t, err)
		assert.Equal(t, CancelRemoved, r, id)
		st, err := c.Inspector().MessageStatus(ctx, q, id)
		require.NoError(t, err)
		assert.Equal(t, StatusNone, st, id)
	}
	r, err := c.Cancel(ctx, q, "now")
	require.NoError(t, err)
	assert.Equal(t, CancelNotFound, r, "a second cancel")
	r, err = c.Cancel(ctx, q, "never-enqueued")
	require.NoError(t, err)
	assert.Equal(t, CancelNotFound, r)
	_, err = c.Cancel(ctx, q, "")
	require.ErrorIs(t, err, ErrInvalidMessageID)

	h := newBlockingHandler()
	w, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
		h.started <- m.ID
		return nil
	}), EndOfQueueBackoff: Constant(20 * time.Millisecond)})
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "kept", 1))
	waitAsleep(t, ev)
	waitStarted(t, h.started, "kept")
	select {
	case id := <-h.started:
		t.Fatalf("cancelled message %s ran", id)
	default:
	}
	assert.Zero(t, w.Stats().Counts.Cancelled)
}

// TestCancelRunning: a cancel of a message being handled ends its
// handler's context through the client's subscription, long before any
// renewal (lock time of a minute), with the cause ErrCancelled; the late
// success of the handler is recorded as cancelled: the message is gone,
// with no dead letter, and its cancel entry with it.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	h := newBlockingHandler()
	w, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: h, LockTime: time.Minute})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	waitStarted(t, h.started, "x")

	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.ErrorIs(t, h.cause("x"), ErrCancelled)
	assert.Zero(t, w.Stats().Counts.LocksRenewed, "ended by the subscription, not by a renewal")
	assert.Equal(t, int64(1), w.Stats().Counts.Cancelled)
	assert.Zero(t, w.Stats().Counts.Succeeded)

	st, err := c.Inspector().MessageStatus(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusNone, st)
	n, err := s.RDB.HLen(ctx, s.Key(q, keys.Dead)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "no dead letter")
	ok, err := s.RDB.HExists(ctx, s.Key(q, keys.Cancels), "x").Result()
	require.NoError(t, err)
	assert.False(t, ok, "the cancel entry goes with the message")
	r, err = c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelNotFound, r)
}

// TestCancelRunningViaRenewal: with the subscription deaf (every publish
// missed), the next lock renewal finds the cancel and ends the handling.
func TestCancelRunningViaRenewal(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	c.cancels.deaf = true
	q := queuetest.QueueName(t)
	ctx := context.Background()
	h := newBlockingHandler()
	// Renewals every second: with a 900 ms lock (every 300 ms) a loaded
	// machine (-race, load ~30) let the lock run out before a renewal came
	// through, and the handling ended for its lock's expiry instead.
	w, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: h, LockTime: 3 * time.Second})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	waitStarted(t, h.started, "x")
	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.ErrorIs(t, h.cause("x"), ErrCancelled)
	assert.Positive(t, w.Stats().Counts.LocksRenewed)
	st, err := c.Inspector().MessageStatus(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusNone, st)
}

// TestCancelledSuccessLate: a handler that ignores its context and
// succeeds after the cancel: its success is recorded as cancelled
// (Redis decides, whatever the worker heard).
func TestCancelledSuccessLate(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	c.cancels.deaf = true
	q := queuetest.QueueName(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	w, ev := startSubscribed(t, c, q, &WorkerConfig{LockTime: time.Minute,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			close(started)
			<-release // ignores ctx
			return nil
		})})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	<-started
	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	info, err := c.Inspector().Message(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusLocked, info.Status)
	assert.False(t, info.CancelRequested.IsZero(), "the cancel shows while it stands")
	close(release)
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.Equal(t, int64(1), w.Stats().Counts.Cancelled)
	assert.Zero(t, w.Stats().Counts.Succeeded)
}

// TestHandlerAnswersCancelled: a handler may cancel its own message: an
// error wrapping ErrCancelled is neither a failure nor a dead letter.
func TestHandlerAnswersCancelled(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	w, ev := startSubscribed(t, c, q, &WorkerConfig{MaxAttempts: 1,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			return fmt.Errorf("order withdrawn: %w", ErrCancelled)
		})})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	st, err := c.Inspector().MessageStatus(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusNone, st)
	n, err := s.RDB.HLen(ctx, s.Key(q, keys.Dead)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "no dead letter")
	assert.Equal(t, int64(1), w.Stats().Counts.Cancelled)
	assert.Zero(t, w.Stats().Counts.Dead+w.Stats().Counts.Failed)
}

// TestCancelOfDeadHandling: the worker holding a cancelled message dies
// (its lock runs out, no outcome): no poll hands the message out again;
// it is collected as cancelled, never retried, never a dead letter.
func TestCancelOfDeadHandling(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x", LockTime: 300 * time.Millisecond})
	// A worker takes it and dies: a poll by hand, never answered.
	reply, err := protocol.Poll(ctx, s.RDB, s.Keys(q), protocol.PollArgs{LockTime: time.Minute, MaxSteps: 4,
		Poller: "dead", Seq: 1})
	require.NoError(t, err)
	require.Equal(t, protocol.StepHandle, reply.Steps[0].Kind)
	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	s.AwaitClock(t, reply.Steps[0].LockedUntil-reply.Steps[0].Now)

	ran := make(chan string, 1)
	w, ev := startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error { ran <- m.ID; return nil })})
	queuetest.WaitFor(t, "the cancelled message collected", func() bool { return w.Stats().Counts.Skips.Cancelled == 1 })
	waitAsleep(t, ev)
	select {
	case id := <-ran:
		t.Fatalf("cancelled message %s ran again", id)
	default:
	}
	st, err := c.Inspector().MessageStatus(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusNone, st)
	n, err := s.RDB.HLen(ctx, s.Key(q, keys.Dead)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "no dead letter")
}

// TestCancelEntriesBounded: a cancel entry whose message went without an
// outcome this library saw (a Carmine worker's collection, which does not
// know cancels) is dropped by the walk of a later cancel; DeleteMessage
// drops an entry at once.
func TestCancelEntriesBounded(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		enqueue(t, c, q, id, &EnqueueOptions{MessageID: id})
	}
	reply, err := protocol.Poll(ctx, s.RDB, s.Keys(q), protocol.PollArgs{LockTime: time.Minute, MaxSteps: 8, Poller: "p", Seq: 1})
	require.NoError(t, err)
	for _, st := range reply.Steps { // every one reports progress
		if st.Kind == protocol.StepHandle {
			_, err := protocol.Renew(ctx, s.RDB, s.Keys(q), []protocol.Renewal{{ID: st.ID, LockedUntil: st.LockedUntil,
				LockTime: time.Minute, Progress: protocol.EncodeProgress(1, "")}})
			require.NoError(t, err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		r, err := c.Cancel(ctx, q, id)
		require.NoError(t, err)
		require.Equal(t, CancelSignalled, r, id)
	}
	// "a" collected as Carmine collects (messages, udts, locks... but not
	// cancels); "b" deleted.
	for _, k := range []keys.Index{keys.Messages, keys.UDTs, keys.Locks, keys.NAttempts, keys.LockTimes} {
		require.NoError(t, s.RDB.HDel(ctx, s.Key(q, k), "a").Err())
	}
	existed, err := c.Inspector().DeleteMessage(ctx, q, "b")
	require.NoError(t, err)
	require.True(t, existed)
	has := func(id string) bool {
		ok, err := s.RDB.HExists(ctx, s.Key(q, keys.Cancels), id).Result()
		require.NoError(t, err)
		return ok
	}
	assert.True(t, has("a"))
	assert.False(t, has("b"), "DeleteMessage drops the cancel")
	ok, err := s.RDB.HExists(ctx, s.Key(q, keys.Progress), "b").Result()
	require.NoError(t, err)
	assert.False(t, ok, "DeleteMessage drops the progress")
	ok, err = s.RDB.HExists(ctx, s.Key(q, keys.Progress), "c").Result()
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = c.Cancel(ctx, q, "c") // a cancel again: its walk drops "a"
	require.NoError(t, err)
	assert.False(t, has("a"), "the walk drops a stale entry")
	assert.True(t, has("c"))

	// ClearQueues drops the rest.
	_, err = c.Inspector().ClearQueues(ctx, q)
	require.NoError(t, err)
	n, err := s.RDB.Exists(ctx, s.Key(q, keys.Cancels), s.Key(q, keys.Progress)).Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestProgress: a handler's progress rides on its next renewal and is
// read from any process; ProgressNow stores it at once; it goes with the
// message.
func TestProgress(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	other := newClient(t, s, nil) // another process's view
	q := queuetest.QueueName(t)
	ctx := context.Background()
	step := make(chan struct{})
	done := make(chan struct{})
	_, ev := startSubscribed(t, c, q, &WorkerConfig{LockTime: 600 * time.Millisecond,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if err := m.ProgressNow(ctx, 1, "started"); err != nil {
				return err
			}
			<-step
			m.Progress(2, "halfway")
			<-done
			return nil
		})})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	progress := func() *Progress {
		info, err := other.Inspector().Message(ctx, q, "x")
		require.NoError(t, err)
		return info.Progress
	}
	queuetest.WaitFor(t, "progress 1", func() bool { p := progress(); return p != nil && p.N == 1 })
	assert.Equal(t, "started", progress().Note)
	close(step)
	queuetest.WaitFor(t, "progress 2 on a renewal", func() bool { p := progress(); return p != nil && p.N == 2 })
	p := progress()
	assert.Equal(t, "halfway", p.Note)
	assert.WithinDuration(t, time.Now(), p.At, time.Minute)
	close(done)
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "x", 1))
	ok, err := s.RDB.HExists(ctx, s.Key(q, keys.Progress), "x").Result()
	require.NoError(t, err)
	assert.False(t, ok, "progress goes with the message")
}

// TestCancelledIsErrCancelled: errors.Is holds through the handler's
// context cause and the public sentinel.
func TestCancelledIsErrCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrCancelled)
	assert.True(t, errors.Is(context.Cause(ctx), ErrCancelled))
	assert.Equal(t, OutcomeCancelled, handlingOutcome(protocol.Completion{Outcome: outcomeOf(fmt.Errorf("w: %w", ErrCancelled)).name}, false))
}

// TestCancelledHandlerGivesUp: a handler that returns its context's error
// once cancelled has its outcome recorded as cancelled at once (not left
// locked as an abandoned handling is).
func TestCancelledHandlerGivesUp(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	started := make(chan string, 1)
	w, ev := startSubscribed(t, c, q, &WorkerConfig{LockTime: time.Minute,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			started <- m.ID
			<-ctx.Done()
			return ctx.Err()
		})})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	waitStarted(t, started, "x")
	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.Zero(t, w.Stats().Counts.Abandoned)
	st, err := c.Inspector().MessageStatus(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, StatusNone, st)
}

// TestCancelSubscriptionSurvivesRedisRestart: Redis restarted under a
// running worker; the client's subscription comes back by itself, so that
// a cancel after it still ends a handling at once (the lock time of a
// minute leaves no renewal to catch it).
func TestCancelSubscriptionSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	h := newBlockingHandler()
	w, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: h, LockTime: time.Minute,
		EndOfQueueBackoff: Constant(20 * time.Millisecond)})
	s.Real.Kill(t)
	waitKind(t, ev, EventPollFailed, 1)
	s.Real.Restart(t)
	cancelAfterRestart(t, c, q, h, w, ev)
}

// TestCancelHeardBeforeHandling: a cancel heard for a message whose
// handling has not started yet (prefetched) ends that handling as it
// starts; one for another message of the same id (another first-enqueue
// time) does not.
func TestCancelHeardBeforeHandling(t *testing.T) {
	c := &Client{}
	cw := newCancelWatch(c)
	ch := protocol.CancelChannel("q", false)
	cw.fire(cancelKey{channel: ch, id: "x", udt: 5})

	slot := cw.watcher(ch)
	defer slot.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	slot.Watch(&protocol.Step{ID: "x", FirstEnqueued: 5}, cancel)
	assert.ErrorIs(t, context.Cause(ctx), ErrCancelled)
	slot.Unwatch()

	later, cancelLater := context.WithCancelCause(context.Background())
	slot.Watch(&protocol.Step{ID: "x", FirstEnqueued: 6}, cancelLater)
	assert.NoError(t, later.Err(), "another message of the id")

	cw.fire(cancelKey{channel: ch, id: "x", udt: 6})
	assert.ErrorIs(t, context.Cause(later), ErrCancelled, "a running handling")
	slot.Unwatch()
}

// TestCancelWatchTwoHandlings: two handlings of one message (the first's
// lock ran out while the second started), on two handler threads, are
// both ended by its cancel; a thread's handling that ended is not, nor is
// another queue's message of the same id, and a thread done leaves
// nothing registered.
func TestCancelWatchTwoHandlings(t *testing.T) {
	cw := newCancelWatch(&Client{})
	ch := protocol.CancelChannel("q", false)
	s := &protocol.Step{ID: "x", FirstEnqueued: 5}
	first, cancelFirst := context.WithCancelCause(context.Background())
	second, cancelSecond := context.WithCancelCause(context.Background())
	third, cancelThird := context.WithCancelCause(context.Background())
	other, cancelOther := context.WithCancelCause(context.Background())
	slots := []*cancelSlot{cw.watcher(ch), cw.watcher(ch), cw.watcher(ch)}
	otherSlot := cw.watcher(protocol.CancelChannel("r", false))
	slots[0].Watch(s, cancelFirst)
	slots[1].Watch(s, cancelSecond)
	slots[2].Watch(s, cancelThird)
	otherSlot.Watch(s, cancelOther)
	slots[1].Unwatch()
	cw.fire(cancelKey{channel: ch, id: "x", udt: 5})
	assert.ErrorIs(t, context.Cause(first), ErrCancelled)
	assert.NoError(t, second.Err(), "unregistered")
	assert.ErrorIs(t, context.Cause(third), ErrCancelled)
	assert.NoError(t, other.Err(), "another queue's")
	for _, slot := range append(slots, otherSlot) {
		slot.Unwatch()
		slot.Close()
	}
	assert.Empty(t, cw.slots, "nothing left registered")
}

// TestCancelWatchAllocatesNothing: a handling's watch, while no cancel
// was heard lately, allocates nothing (no entry, no closure: the thread's
// slot is made once).
func TestCancelWatchAllocatesNothing(t *testing.T) {
	cw := newCancelWatch(&Client{})
	slot := cw.watcher(protocol.CancelChannel("q", false))
	defer slot.Close()
	s := &protocol.Step{ID: "x", FirstEnqueued: 5}
	_, cancel := context.WithCancelCause(context.Background())
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		slot.Watch(s, cancel)
		slot.Unwatch()
	}))
}

// cancelAfterRestart enqueues a message "x" to q once the client, after
// a Redis restart, reaches Redis again, waits for w's handler h to start
// it, and cancels it until the handling ends (the subscription may come
// back a little after the worker's polls; each cancel of a running message
// publishes again): the handling ends cancelled, with no lock renewal.
func cancelAfterRestart(t *testing.T, c *Client, q string, h *blockingHandler, w *Worker, ev <-chan Event) {
	t.Helper()
	ctx := context.Background()
	var err error
	for range 50 { // the client reconnects on its own; an enqueue may meet the old connection
		if _, err = c.Enqueue(ctx, q, "x", &EnqueueOptions{MessageID: "x"}); err == nil {
			break
		}
	}
	require.NoError(t, err)
	waitStarted(t, h.started, "x")
	deadline := time.Now().Add(eventTimeout)
	for h.cause("x") == nil {
		require.True(t, time.Now().Before(deadline), "the handling never ended")
		r, err := c.Cancel(ctx, q, "x")
		if err == nil && r != CancelSignalled {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.ErrorIs(t, h.cause("x"), ErrCancelled)
	assert.Zero(t, w.Stats().Counts.LocksRenewed)
}

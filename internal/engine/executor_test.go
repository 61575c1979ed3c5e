package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The executor on its own: fakes for its handler, sinks and store.

type fakeHandler struct {
	handle  func(ctx context.Context, d *Delivery) error
	settled chan settledCall
}

type settledCall struct {
	id        string
	err       error
	abandoned bool
}

func (h *fakeHandler) Handle(ctx context.Context, d *Delivery, _ *Lock) error {
	return h.handle(ctx, d)
}

func (h *fakeHandler) Settle(_ context.Context, d *Delivery, err error, _ time.Duration, abandoned bool) (Pending, bool) {
	h.settled <- settledCall{d.Step.ID, err, abandoned}
	if abandoned {
		return Pending{}, false
	}
	return Pending{Completion: protocol.Completion{ID: d.Step.ID, Outcome: protocol.OutcomeSuccess}, Attempt: d.Step.Attempt}, true
}

type fakeExecEvents struct {
	mu       sync.Mutex
	released int
}

func (e *fakeExecEvents) Released(*Delivery)           { e.mu.Lock(); e.released++; e.mu.Unlock() }
func (e *fakeExecEvents) LockRenewed(*Delivery)        {}
func (e *fakeExecEvents) RenewFailed(*Delivery, error) {}

type adds chan Pending

func (a adds) Add(p Pending) { a <- p }

func delivery(id string, lockedUntil int64, received time.Time) Delivery {
	return Delivery{
		Step:     protocol.Step{Kind: protocol.StepHandle, ID: id, Attempt: 1, LockTime: time.Minute, LockedUntil: lockedUntil},
		Sent:     received,
		Received: received,
	}
}

func startExecutor(t *testing.T, h Handler, ev ExecutorEvents, out Adder) (*Executor, *Room, chan Delivery, context.CancelFunc) {
	t.Helper()
	room := NewRoom(1, 0, false, time.Minute)
	require.Equal(t, 1, room.TryTake(0))
	x := NewExecutor(ExecutorConfig{HandlerThreads: 1, NoLockRenewal: true, Handler: h, Events: ev, Room: room, Completer: out})
	deliveries := make(chan Delivery, 4)
	polling, stopPolling := context.WithCancel(context.Background())
	x.Start(context.Background(), polling, deliveries)
	t.Cleanup(func() {
		stopPolling()
		close(deliveries)
		<-x.Done()
	})
	return x, room, deliveries, stopPolling
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("nothing received")
		var zero T
		return zero
	}
}

// TestExecutorHandsOutcomeWithToken: a handled delivery's outcome goes to
// the completer with the lock's token, and its room is freed.
func TestExecutorHandsOutcomeWithToken(t *testing.T) {
	h := &fakeHandler{handle: func(context.Context, *Delivery) error { return nil }, settled: make(chan settledCall, 4)}
	out := make(adds, 4)
	_, room, deliveries, _ := startExecutor(t, h, &fakeExecEvents{}, out)
	deliveries <- delivery("a", 42, time.Now())
	p := receive(t, out)
	assert.Equal(t, "a", p.ID)
	assert.Equal(t, int64(42), p.LockedUntil, "the token the lock holds")
	assert.False(t, receive(t, h.settled).abandoned)
	<-room.Freed()
	assert.Equal(t, 1, room.TryTake(0), "the room came back")
}

// TestExecutorGivesBackStale: a delivery that waited over a quarter of
// its lock time goes back unhandled, as a release with its poll's token.
func TestExecutorGivesBackStale(t *testing.T) {
	h := &fakeHandler{handle: func(context.Context, *Delivery) error {
		t.Error("a stale delivery was handled")
		return nil
	}, settled: make(chan settledCall, 4)}
	ev, out := &fakeExecEvents{}, make(adds, 4)
	_, _, deliveries, _ := startExecutor(t, h, ev, out)
	deliveries <- delivery("old", 7, time.Now().Add(-time.Minute/2))
	p := receive(t, out)
	assert.Equal(t, protocol.OutcomeRelease, p.Outcome)
	assert.Equal(t, int64(7), p.LockedUntil)
	ev.mu.Lock()
	defer ev.mu.Unlock()
	assert.Equal(t, 1, ev.released)
}

// TestExecutorAbandon: a handling marked abandoned while it runs hands in
// nothing, and Settle hears it was abandoned.
func TestExecutorAbandon(t *testing.T) {
	running, release := make(chan struct{}), make(chan struct{})
	h := &fakeHandler{handle: func(context.Context, *Delivery) error {
		close(running)
		<-release
		return nil
	}, settled: make(chan settledCall, 4)}
	out := make(adds, 4)
	x, room, deliveries, _ := startExecutor(t, h, &fakeExecEvents{}, out)
	deliveries <- delivery("a", 1, time.Now())
	<-running
	assert.Equal(t, 1, x.Busy())
	assert.Equal(t, 1, x.Abandon())
	assert.Zero(t, x.Abandon(), "once")
	close(release)
	assert.True(t, receive(t, h.settled).abandoned)
	<-room.Freed() // the handling is over
	select {
	case p := <-out:
		t.Errorf("an abandoned handling handed in %v", p)
	default:
	}
}

// nopHandler succeeds at once, and allocates nothing of its own.
type nopHandler struct{}

func (nopHandler) Handle(context.Context, *Delivery, *Lock) error { return nil }
func (nopHandler) Settle(_ context.Context, d *Delivery, _ error, _ time.Duration, _ bool) (Pending, bool) {
	return Pending{Completion: protocol.Completion{ID: d.Step.ID, Outcome: protocol.OutcomeSuccess}}, true
}

type nopAdder struct{}

func (nopAdder) Add(Pending) {}

// nopWatcher is a cancel watcher that never hears a cancel.
type nopWatcher struct{}

func (nopWatcher) Watch(*protocol.Step, context.CancelCauseFunc) {}
func (nopWatcher) Unwatch()                                      {}
func (nopWatcher) Close()                                        {}

// TestExecutorHandlingAllocations: a handling with lock renewal and a
// cancel watch on costs its context, its lock and its cancel function and
// little else: no goroutine, timer or channel of its own (the thread's
// renewer and lock expiry serve handling after handling), no watch entry.
func TestExecutorHandlingAllocations(t *testing.T) {
	room := NewRoom(1, 0, false, time.Minute)
	x := NewExecutor(ExecutorConfig{HandlerThreads: 1, Handler: nopHandler{}, Events: &fakeExecEvents{}, Room: room,
		Completer: nopAdder{}, Watcher: func() CancelWatcher { return nopWatcher{} }})
	expiry := newLockExpiry()
	defer expiry.stop()
	renew := newRenewer(0)
	defer renew.stop()
	var watchers threadWatchers
	defer watchers.close()
	var state atomic.Int32
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := delivery("a", 1, time.Now())
	allocs := testing.AllocsPerRun(100, func() {
		x.handle(base, &d, expiry, renew, &watchers, &state)
	})
	// The handling's context (2), its cancel function and lapse state
	// (2), and its lock (1).
	assert.LessOrEqual(t, allocs, 5.0)
}

package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkerLockTimeout(t *testing.T) {
	for _, perMessage := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-message=%v", perMessage), func(t *testing.T) {
			queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
				c := newClient(t, s, nil)
				q := queuetest.QueueName(t)
				cfg := WorkerConfig{HandlerThreads: 2, LockTime: 300 * time.Millisecond, NoLockRenewal: true}
				opts := &EnqueueOptions{MessageID: "slow"}
				if perMessage {
					cfg.LockTime = time.Hour
					opts.LockTime = 300 * time.Millisecond
				}
				release := make(chan struct{})
				var stalled atomic.Bool
				w, calls, ev := startWorkerEvents(t, c, q, cfg, func(ctx context.Context, h handling) error {
					if stalled.CompareAndSwap(false, true) {
						<-release // the first handling stalls past its lock
					}
					return nil
				})
				enqueue(t, c, q, "x", opts)
				// The first start is attempt 1 unless that hand-out went
				// stale before a handler took it (its poll took over three
				// quarters of the 300 ms lock, Delivery.stale) and it was
				// given back: seen on redis beside a yes hog and three
				// other test processes, the first start was attempt 2.
				first := next(t, calls).attempt
				// Handed out again, as the next attempt unless that
				// hand-out went stale in turn: seen at load ~30 on
				// miniredis, the second start was attempt 3.
				assert.Greater(t, next(t, calls).attempt, first, "handed out again once the lock expired")
				close(release)
				// The next attempt's lock is as short as the first's: on a
				// busy machine its poll's reply and its outcome's call may
				// take all of it, its outcome is fenced too and a later
				// attempt succeeds. Whatever the machine, every handling
				// but one is fenced, the stalled one among them, and one
				// succeeds.
				outcomes := map[int]Outcome{}
				succeeded := 0
				for succeeded == 0 || outcomes[first] == "" {
					e := waitEvent(t, ev, "the stalled handling settled and a success", func(e Event) bool { return e.Kind == EventHandled })
					outcomes[e.Attempt] = e.Outcome
					if e.Outcome == OutcomeSucceeded {
						succeeded++
					}
				}
				// The fenced handling counts as lost only, not as a success too.
				assert.Equal(t, OutcomeLockLost, outcomes[first], "the stalled handling fenced")
				for a, o := range outcomes {
					if o != OutcomeSucceeded {
						assert.Equal(t, OutcomeLockLost, o, "attempt %d", a)
					}
				}
				assert.Equal(t, int64(1), w.Stats().Counts.Succeeded)
			})
		})
	}
}

// TestWorkerFencing: docs/protocol.md §7. A handler stalls past its lock, a
// second worker takes the message and completes it, then the first
// completes late: the late outcome changes nothing.
func TestWorkerFencing(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: mid})
		releaseA := make(chan struct{})
		// A's lock runs out soon; B's (the default, renewed) holds until
		// the test lets B go, so that A cannot take the message again.
		_, callsA, evA := startWorkerEvents(t, c, q, WorkerConfig{NoLockRenewal: true, LockTime: 300 * time.Millisecond}, func(context.Context, handling) error {
			<-releaseA
			return Retry(time.Hour) // would put it back in the queue with a backoff
		})
		require.Equal(t, 1, next(t, callsA).attempt)

		releaseB := make(chan struct{})
		_, callsB, evB := startWorkerEvents(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			<-releaseB
			return nil
		})
		require.Equal(t, 2, next(t, callsB).attempt, "B takes it once A's lock expired")
		ctx := context.Background()
		// B holds a fresh lock: capture the state B's handling wrote.
		before, err := c.Inspector().Message(ctx, q, mid)
		require.NoError(t, err)
		require.False(t, before.LockedUntil.IsZero())
		close(releaseA)
		assert.Equal(t, OutcomeLockLost, waitHandled(t, evA, mid, 1), "A's late outcome fenced")
		after, err := c.Inspector().Message(ctx, q, mid)
		require.NoError(t, err)
		assert.Equal(t, StatusLocked, after.Status, "not done, nor queued again, by A")
		assert.Equal(t, before.LockedUntil, after.LockedUntil, "B's lock unchanged")
		assert.True(t, after.BackoffUntil.IsZero(), "no backoff from A")
		assert.Equal(t, int64(2), after.Attempts)

		close(releaseB)
		// The success is settled once the call that recorded it has answered.
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, evB, mid, 2))
		st, err := c.Inspector().MessageStatus(ctx, q, mid)
		require.NoError(t, err)
		assert.Contains(t, []MessageStatus{StatusDoneAwaitingGC, StatusNone}, st)
	})
}

// TestWorkerRenewal: the worker renews a running handling's lock again
// and again, each renewal pushing the lock on in Redis, and the outcome,
// sent with the token of the last renewal, succeeds: the message is
// handled once and no lock is lost. That a renewal also moves the time at
// which the handling is cancelled is TestLockRenewMovesDeadline's
// (internal/engine).
//
// The lock is an hour long and renewed every 10 ms, so that no stall of a
// loaded machine lets it run out. With a 3 s lock renewed every second,
// as a worker does by default, it ran out under load, and the handling
// was abandoned as it must be: beside the suite of -race tests, the
// process's timers fired one to three seconds late and a renewal took
// 2.5 s to answer.
func TestWorkerRenewal(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		var handled atomic.Int64
		var extendErr, readErr error
		var before, after time.Time // the lock in Redis, at the handler's start and end
		var renewals <-chan Event
		lockedUntil := func(ctx context.Context) time.Time {
			info, err := c.Inspector().Message(ctx, q, "long")
			if err != nil {
				readErr = err
			}
			return info.LockedUntil
		}
		w, err := c.NewWorker(q, &WorkerConfig{
			LockTime:          time.Hour,
			renewEvery:        10 * time.Millisecond,
			HandlerThreads:    2,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				handled.Add(1)
				before = lockedUntil(ctx)
				extendErr = m.ExtendLock(ctx)
				for range 4 {
					select {
					case <-renewals:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				after = lockedUntil(ctx)
				return nil
			}),
		})
		require.NoError(t, err)
		renewals = subscribe(t, w, EventLockRenewed)
		ev := subscribe(t, w, EventHandled)
		require.NoError(t, w.Start(t.Context()))
		t.Cleanup(func() { _ = w.Close() })
		enqueue(t, c, q, "long", &EnqueueOptions{MessageID: "long"})
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "long", 1))
		assert.Equal(t, int64(1), handled.Load(), "handled once")
		assert.NoError(t, extendErr)
		require.NoError(t, readErr)
		assert.False(t, before.IsZero(), "locked while handled")
		assert.True(t, after.After(before), "the lock pushed on: %v, then %v", before, after)
		assert.GreaterOrEqual(t, w.Stats().Counts.LocksRenewed, int64(4))
		assert.Zero(t, w.Stats().Counts.LockLost)
	})
}

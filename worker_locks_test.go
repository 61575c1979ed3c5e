package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkerLockTimeout(t *testing.T) {
	for _, perMessage := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-message=%v", perMessage), func(t *testing.T) {
			onEachServer(t, func(t *testing.T, s *server) {
				c := s.client(t, nil)
				q := queueName(t)
				cfg := WorkerConfig{HandlerThreads: 2, LockTime: 300 * time.Millisecond, NoLockRenewal: true}
				opts := &EnqueueOptions{MessageID: "slow"}
				if perMessage {
					cfg.LockTime = time.Hour
					opts.LockTime = 300 * time.Millisecond
				}
				release := make(chan struct{})
				w, calls := startWorker(t, c, q, cfg, func(ctx context.Context, h handling) error {
					if h.attempt == 1 {
						<-release // stalls past its lock
					}
					return nil
				})
				enqueue(t, c, q, "x", opts)
				assert.Equal(t, 1, next(t, calls).attempt)
				assert.Equal(t, 2, next(t, calls).attempt, "handed out again once the lock expired")
				close(release)
				waitFor(t, "the late outcome to be fenced", func() bool { return w.Stats().Counts.LockLost == 1 })
				waitFor(t, "the second handling's outcome", func() bool { return w.Stats().Counts.Succeeded == 1 })
				// The fenced handling counts as lost only, not as a success too.
				assert.Equal(t, int64(1), w.Stats().Counts.Succeeded)
			})
		})
	}
}

// TestWorkerFencing: docs/protocol.md §7. A handler stalls past its lock, a
// second worker takes the message and completes it, then the first
// completes late: the late outcome changes nothing.
func TestWorkerFencing(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: mid})
		releaseA := make(chan struct{})
		// A's lock runs out soon; B's (the default, renewed) holds until
		// the test lets B go, so that A cannot take the message again.
		a, callsA := startWorker(t, c, q, WorkerConfig{NoLockRenewal: true, LockTime: 300 * time.Millisecond}, func(context.Context, handling) error {
			<-releaseA
			return Retry(time.Hour) // would put it back in the queue with a backoff
		})
		require.Equal(t, 1, next(t, callsA).attempt)

		releaseB := make(chan struct{})
		b, callsB := startWorker(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			<-releaseB
			return nil
		})
		require.Equal(t, 2, next(t, callsB).attempt, "B takes it once A's lock expired")
		ctx := context.Background()
		// B holds a fresh lock: capture the state B's handling wrote.
		lockB := s.hget(t, q, keys.Locks)
		require.NotEmpty(t, lockB)
		close(releaseA)
		waitFor(t, "A's late outcome to be fenced", func() bool { return a.Stats().Counts.LockLost == 1 })
		assert.Equal(t, lockB, s.hget(t, q, keys.Locks), "B's lock unchanged")
		assert.Equal(t, "", s.hget(t, q, keys.Backoffs), "no backoff from A")
		assert.False(t, s.isMember(t, q, keys.Done), "not done by A")
		assert.Equal(t, int64(2), s.hgetInt(t, q, keys.NAttempts))

		close(releaseB)
		// The success counts once the call that recorded it has answered.
		waitFor(t, "B's outcome to be recorded", func() bool { return b.Stats().Counts.Succeeded == 1 })
		st, err := c.Inspector().MessageStatus(ctx, q, mid)
		require.NoError(t, err)
		assert.Contains(t, []MessageStatus{StatusDoneAwaitingGC, StatusNone}, st)
	})
}

func TestWorkerRenewal(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		var handled atomic.Int64
		var extendErr error
		var worker atomic.Pointer[Worker]
		// The lock time leaves a busy machine room to renew in time; the
		// work itself lasts until the worker renewed the lock four times,
		// so over a lock time and a third.
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			LockTime:          time.Second,
			HandlerThreads:    2,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				handled.Add(1)
				extendErr = m.ExtendLock(ctx)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for worker.Load().Stats().Counts.LocksRenewed < 4 {
					select {
					case <-tick.C:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}),
		})
		worker.Store(w)
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		enqueue(t, c, q, "long", &EnqueueOptions{MessageID: "long"})
		waitFor(t, "the outcome", func() bool { return w.Stats().Counts.Succeeded == 1 })
		assert.Equal(t, int64(1), handled.Load(), "handled once")
		assert.NoError(t, extendErr)
		assert.Positive(t, w.Stats().Counts.LocksRenewed)
		assert.Zero(t, w.Stats().Counts.LockLost)
	})
}

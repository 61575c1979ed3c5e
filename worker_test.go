package mq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkerSuccessCollected: a handled message is collected at
// completion (docs/protocol.md §11), not on a later lap.
func TestWorkerSuccessCollected(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "hello", &EnqueueOptions{MessageID: "a"})
		w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{}, nil)
		h := next(t, calls)
		assert.Equal(t, handling{id: "a", attempt: 1, value: "hello"}, h)
		// An outcome is settled once the answer of the call that recorded it
		// is back, just after the status changed.
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "a", 1))
		assert.Equal(t, StatusNone, statusOf(t, c, q, "a"), "collected with its outcome")
		assert.Zero(t, w.Stats().Counts.Skips.DidGC, "no lap needed")
		counts, err := c.Inspector().QueueCounts(context.Background(), q)
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{}, counts, "nothing of it left in the queue")
	})
}

// TestWorkerRetriesThenDeadLetters: a failing handler is retried by the
// policy, then its message becomes a dead letter: inspectable, and
// requeueable as a fresh message. A panic is a failure too, and Final
// skips the retries.
func TestWorkerRetriesThenDeadLetters(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "fail", &EnqueueOptions{MessageID: "e"})
		enqueue(t, c, q, "panic", &EnqueueOptions{MessageID: "p"})
		enqueue(t, c, q, "final", &EnqueueOptions{MessageID: "f"})
		var healed atomic.Bool
		var backoffs sync.Map
		w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{
			MaxAttempts: 3,
			RetryBackoff: func(attempt int) time.Duration {
				backoffs.Store(attempt, true)
				return time.Millisecond
			},
		}, func(ctx context.Context, h handling) error {
			switch {
			case healed.Load():
				return nil
			case h.value == "fail":
				return fmt.Errorf("boom %d", h.attempt)
			case h.value == "panic":
				panic("handler bug")
			}
			return Final(errors.New("no use trying again"))
		})
		attempts := map[string][]int{}
		for range 7 {
			h := next(t, calls)
			attempts[h.id] = append(attempts[h.id], h.attempt)
		}
		assert.Equal(t, map[string][]int{"e": {1, 2, 3}, "p": {1, 2, 3}, "f": {1}}, attempts)
		waitOutcomes(t, ev, map[Outcome]int{OutcomeDead: 3})
		assert.Equal(t, int64(4), w.Stats().Counts.Failed, "the retried failures")
		for _, a := range []int{1, 2} {
			_, ok := backoffs.Load(a)
			assert.True(t, ok, "the policy asked for attempt %d", a)
		}
		_, asked := backoffs.Load(3)
		assert.False(t, asked, "no backoff after the last attempt")

		page, err := c.Inspector().DeadLetters(ctx, q, "", 10)
		require.NoError(t, err)
		require.Len(t, page.Items, 3)
		assert.Empty(t, page.Cursor)
		d, err := c.Inspector().DeadLetter(ctx, q, "e")
		require.NoError(t, err)
		assert.Equal(t, OutcomeDead, d.Reason)
		assert.Equal(t, "boom 3", d.Error)
		assert.Equal(t, int64(3), d.Attempts)
		var v string
		require.NoError(t, d.Decode(&v))
		assert.Equal(t, "fail", v)
		assert.False(t, d.FirstEnqueued.IsZero())
		assert.False(t, d.Died.Before(d.FirstEnqueued))
		dp, err := c.Inspector().DeadLetter(ctx, q, "p")
		require.NoError(t, err)
		assert.Contains(t, dp.Error, "handler panicked: handler bug")
		df, err := c.Inspector().DeadLetter(ctx, q, "f")
		require.NoError(t, err)
		assert.Equal(t, int64(1), df.Attempts, "Final: no retry")
		counts, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{Dead: 3}, counts, "out of the queue, in the dead letters")

		healed.Store(true)
		require.NoError(t, c.Inspector().RequeueDeadLetter(ctx, q, "e"))
		h := next(t, calls)
		assert.Equal(t, handling{id: "e", attempt: 1, value: "fail"}, h, "a fresh message")
		assert.ErrorIs(t, c.Inspector().RequeueDeadLetter(ctx, q, "e"), ErrNoDeadLetter)
		_, err = c.Inspector().DeadLetter(ctx, q, "e")
		assert.ErrorIs(t, err, ErrNoDeadLetter)

		enqueue(t, c, q, "blocker", &EnqueueOptions{MessageID: "p", InitialBackoff: time.Hour})
		var progress []int
		requeued, kept, err := c.Inspector().RequeueDeadLetters(ctx, q, func(r, k int) { progress = append(progress, r, k) })
		require.NoError(t, err)
		assert.Equal(t, []int{1, 1}, []int{requeued, kept}, "f requeued; p kept, its id is queued")
		assert.Equal(t, []int{1, 1}, progress)
		assert.Equal(t, "f", next(t, calls).id)
		ok, err := c.Inspector().DeleteDeadLetter(ctx, q, "p")
		require.NoError(t, err)
		assert.True(t, ok)
		n, err := c.Inspector().DeleteDeadLetters(ctx, q)
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}

func TestWorkerSuccessWithDedupeBackoff(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d"})
		w, _, ev := startWorkerEvents(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			return SucceedWithBackoff(time.Hour)
		})
		// Counted once the reply of the call that recorded it is back,
		// which may be after Redis shows the status.
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "d", 1))
		assert.Equal(t, StatusDoneWithBackoff, statusOf(t, c, q, "d"))
		res := enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d"})
		assert.ErrorIs(t, res.Refused, ErrBackoff)
		st := w.Stats().Counts
		assert.Equal(t, int64(1), st.Succeeded)
		assert.Equal(t, int64(1), st.BackoffsSet)
	})
}

func TestWorkerRetryWithBackoff(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "r"})
		w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.attempt == 1 {
				return Retry(400 * time.Millisecond)
			}
			return nil
		})
		assert.Equal(t, 1, next(t, calls).attempt)
		assert.Equal(t, OutcomeRetried, waitHandled(t, ev, "r", 1))
		assert.Equal(t, 2, next(t, calls).attempt, "handled again after the backoff, with the next attempt")
		st := w.Stats().Counts
		assert.Equal(t, int64(1), st.Retried)
		assert.Equal(t, int64(1), st.BackoffsSet)
	})
}

func TestWorkerRequeue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		release := make(chan struct{})
		_, calls := startWorker(t, c, q, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.value == "v1" {
				<-release
			}
			return nil
		})
		enqueue(t, c, q, "v1", &EnqueueOptions{MessageID: "rq"})
		assert.Equal(t, "v1", next(t, calls).value)
		res := enqueue(t, c, q, "v2", &EnqueueOptions{MessageID: "rq", CanRequeue: true})
		assert.Equal(t, ActionAdded, res.Action)
		assert.Equal(t, StatusLockedWithRequeue, statusOf(t, c, q, "rq"))
		close(release)
		h := next(t, calls)
		assert.Equal(t, handling{id: "rq", attempt: 1, value: "v2"}, h, "handled again with the new content, attempts reset")

		// Requeue during done-with-backoff: handled after the backoff. The
		// window is long enough for the status to be seen and the requeue
		// to land in it on a loaded machine (with 500 ms, at load ~35, the
		// wait for the status outlasted the window).
		q2 := q + ":2"
		_, calls2 := startWorker(t, c, q2, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.value == "v1" {
				return SucceedWithBackoff(5 * time.Second)
			}
			return nil
		})
		enqueue(t, c, q2, "v1", &EnqueueOptions{MessageID: "rq"})
		assert.Equal(t, "v1", next(t, calls2).value)
		waitStatus(t, c, q2, "rq", StatusDoneWithBackoff)
		res = enqueue(t, c, q2, "v2", &EnqueueOptions{MessageID: "rq", CanRequeue: true})
		assert.Equal(t, ActionAdded, res.Action)
		assert.Equal(t, StatusDoneWithRequeue, statusOf(t, c, q2, "rq"))
		assert.Equal(t, "v2", next(t, calls2).value)
	})
}

// TestWorkerUndecodable: a message the codec cannot decode is an error
// outcome with a clear reason, never a crash; it stays inspectable until
// collected.
func TestWorkerUndecodable(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, Raw("\xc1"), &EnqueueOptions{MessageID: "bad"})
		content, err := c.Inspector().QueueContent(context.Background(), q)
		require.NoError(t, err)
		require.Len(t, content, 1)
		assert.ErrorIs(t, content[0].DecodeErr, ErrDecode)

		_, ev := startSubscribed(t, c, q, &WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(_ context.Context, m *Message) error {
				_, err := m.Value()
				return err
			}),
		})
		assert.Equal(t, OutcomeFailed, waitHandled(t, ev, "bad", 1), "the error outcome")
		res := enqueue(t, c, q, "fine", nil)
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, res.MessageID, 1), "the next message")
	})
}

// TestWorkerWakeUp: an idle worker asleep at the end of the queue handles a
// new message before its sleep would have ended.
//
// Where a worker sleeps on its own connection (miniredis, which lacks
// BLMPOP, and a cluster), its sleep blocks an hour at a time, the whole
// sleep: with the default, a blocking call of a second then a look at
// mids-ready, an enqueue that reached Redis between a call's end and the
// look (a window a loaded machine widens) woke the worker through the
// look, and the sentinel stayed in isleep-a.
func TestWorkerWakeUp(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		cfg := WorkerConfig{EndOfQueueBackoff: Constant(time.Minute), sleepChunk: time.Hour}
		_, calls, ev := startWorkerEvents(t, c, q, cfg, nil)
		waitAsleep(t, ev)
		enqueue(t, c, q, "wake", &EnqueueOptions{MessageID: "w"})
		select {
		case h := <-calls:
			assert.Equal(t, "w", h.id)
		case <-time.After(40 * time.Second): // the sleep is at least 48s (a minute less 20%)
			t.Fatal("the enqueue did not wake the sleeping worker")
		}
		// Handled within the first sleep: a second one could only start after
		// 48 s. (Counting sleeps here would race with the worker's next poll,
		// which may already have found the queue empty again.)
		// The sleeper was woken by the sentinel (created in isleep-a by the
		// enqueue, moved to isleep-b by the worker), not by its once-a-second
		// look at mids-ready.
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepB), "woken through the sleep lists")
	})
}

// TestWorkersShareQueue: two workers on one queue handle every message
// exactly once when no lock expires.
func TestWorkersShareQueue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		var mu sync.Mutex
		counts := map[string]int{}
		var ws []*Worker
		for range 2 {
			w, err := c.NewWorker(q, &WorkerConfig{
				HandlerThreads:    4,
				WorkerThreads:     2,
				EndOfQueueBackoff: Constant(20 * time.Millisecond),
				Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
					mu.Lock()
					counts[m.ID]++
					mu.Unlock()
					return nil
				}),
			})
			require.NoError(t, err)
			ws = append(ws, w)
		}
		ev := merged(t, ws, EventHandled)
		for _, w := range ws {
			require.NoError(t, w.Start(t.Context()))
			t.Cleanup(func() { _ = w.Close() })
		}
		reqs := make([]EnqueueRequest, 200)
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprint(i)}}
		}
		_, err := c.EnqueueMany(context.Background(), q, reqs...)
		require.NoError(t, err)
		waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 200})
		qc, err := c.Inspector().QueueCounts(context.Background(), q)
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{}, qc, "every message collected")
		mu.Lock()
		defer mu.Unlock()
		assert.Len(t, counts, 200)
		for id, n := range counts {
			assert.Equal(t, 1, n, "message %s", id)
		}
	})
}

package mq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCountsWithDedupeWindows: ids in their dedupe window count once, as
// done, so messages enqueued meanwhile read as queued (docs/protocol.md
// §10): the pattern that made Carmine's formula read 0.
func TestCountsWithDedupeWindows(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		const windows, fresh = 200, 300
		reqs := make([]EnqueueRequest, windows)
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("w%d", i)}}
		}
		_, err := c.EnqueueMany(ctx, q, reqs...)
		require.NoError(t, err)
		w, _, ev := startWorkerEvents(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			return SucceedWithBackoff(time.Hour)
		})
		waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: windows})
		require.NoError(t, w.Stop(ctx))
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("n%d", i)}}
		}
		reqs = append(reqs, make([]EnqueueRequest, fresh-windows)...)
		for i := windows; i < fresh; i++ {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("n%d", i)}}
		}
		_, err = c.EnqueueMany(ctx, q, reqs...)
		require.NoError(t, err)
		counts, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{Queued: fresh, Done: windows, Total: windows + fresh}, counts)
		size, err := c.Inspector().QueueSize(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, int64(fresh), size)
	})
}

// TestIdleWorkerWakesWhenDue: a worker that would sleep an hour at the end
// of the queue wakes when a message falls due: one delayed at enqueue, and
// one whose handler asked for a retry (no enqueue wakes the worker then).
func TestIdleWorkerWakesWhenDue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		const delay = 300 * time.Millisecond
		ages := make(chan time.Duration, 10)
		_, ev := startSubscribed(t, c, q, &WorkerConfig{
			EndOfQueueBackoff: Constant(time.Hour),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				ages <- m.Age
				if m.ID == "retry" && m.Attempt == 1 {
					return Retry(delay)
				}
				return nil
			}),
		})
		waitAsleep(t, ev)

		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "delayed", InitialBackoff: delay})
		select {
		case age := <-ages:
			assert.GreaterOrEqual(t, age, delay, "not before it was due (server clock)")
		case <-time.After(30 * time.Second):
			t.Fatal("the delayed message was not handled: the worker slept on")
		}

		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "retry"})
		<-ages
		select {
		case <-ages:
		case <-time.After(30 * time.Second):
			t.Fatal("the retry was not handled: the worker slept on")
		}
	})
}

// TestEnqueueAt: At is resolved against the server's clock: a time a
// moment ahead delays the message until then; a time past is now.
func TestEnqueueAt(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		tm, err := s.RDB.Time(ctx).Result()
		require.NoError(t, err)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "later", At: tm.Add(time.Hour)})
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "past", At: tm.Add(-time.Hour)})
		assert.Equal(t, StatusQueuedWithBackoff, statusOf(t, c, q, "later"))
		assert.Equal(t, StatusQueued, statusOf(t, c, q, "past"))
		content, err := c.Inspector().QueueContent(ctx, q)
		require.NoError(t, err)
		for _, m := range content {
			if m.ID == "later" {
				assert.InDelta(t, time.Hour.Seconds(), m.Backoff.Seconds(), 5, "an hour from the server's now")
			}
		}
	})
}

// TestNoCarmineWorkers: Config.NoCarmineWorkers reaches the enqueue
// script (what it makes of it, a delayed message in the due index alone,
// is internal/protocol's TestEnqueueIndexOnly), and an idle worker still
// handles a delayed message when it falls due.
func TestNoCarmineWorkers(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, &Config{NoCarmineWorkers: true})
		q := queuetest.QueueName(t)
		assert.True(t, c.enqueueCall(1).IndexOnly, "the enqueue call says so")
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "later", InitialBackoff: 200 * time.Millisecond})
		_, calls := startWorker(t, c, q, WorkerConfig{EndOfQueueBackoff: Constant(time.Hour)}, nil)
		select {
		case h := <-calls:
			assert.Equal(t, "later", h.id)
		case <-time.After(30 * time.Second):
			t.Fatal("the delayed message was not handled")
		}
	})
}

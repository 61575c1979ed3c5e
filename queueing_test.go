package mq

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueingTimeFromDue: a message's queueing time counts from when it
// was due, not from its first enqueue, so that a planned delay is not
// read as waiting (mq_worker_queueing_seconds' p99 read 125 s of
// delays). Two messages first enqueued an hour ago: one delayed by this
// library's enqueue and woken from the due index when its delay ends, one
// delayed as Carmine's enqueue writes it (a backoff on the circle, no due
// entry), whose delay ended before the worker met it on its lap. Both
// report an Age of an hour and a queueing time of far less.
func TestQueueingTimeFromDue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		hourAgo := s.Now(t) - time.Hour.Milliseconds()

		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "ours", InitialBackoff: 200 * time.Millisecond})
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.UDTs), "ours", hourAgo).Err())

		now := s.Now(t)
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Messages), "carmine", "\xa1y").Err())
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.UDTs), "carmine", hourAgo).Err())
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Backoffs), "carmine", now-1).Err())
		require.NoError(t, s.RDB.LPush(ctx, s.Key(q, keys.MidCircle), "carmine").Err())

		seen := make(chan Handling, 10)
		w, _ := startWorker(t, c, q, WorkerConfig{Observer: ObserverFunc(func(h Handling) { seen <- h })}, nil)
		got := map[string]Handling{}
		for len(got) < 2 {
			select {
			case h := <-seen:
				got[h.ID] = h
			case <-time.After(30 * time.Second):
				t.Fatalf("handlings seen: %v", got)
			}
		}
		for _, id := range []string{"ours", "carmine"} {
			h := got[id]
			assert.GreaterOrEqual(t, h.Age, time.Hour, "%s: Age counts from the first enqueue", id)
			assert.Less(t, h.QueueingTime, 30*time.Minute, "%s: queueing time counts from when it was due", id)
		}
		qt := w.Stats().QueueingTime
		assert.Equal(t, int64(2), qt.Count)
		assert.Less(t, qt.Max, 30*time.Minute, "WorkerStats samples the same")
	})
}

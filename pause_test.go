package mq

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPauseQueue: a pause made through one client stops a worker of
// another from handing out, while it goes on recording the outcome it
// holds; a resume starts it again.
func TestPauseQueue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		admin := newClient(t, s, nil)
		ctx := context.Background()
		q := queuetest.QueueName(t)

		_, err := admin.Inspector().PauseQueue(ctx, "")
		assert.ErrorIs(t, err, ErrInvalidQueueName)

		release := make(chan struct{})
		_, calls, ev := startWorkerEvents(t, newClient(t, s, nil), q, WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
		}, func(_ context.Context, h handling) error {
			if h.id == "held" {
				<-release
			}
			return nil
		})
		enqueue(t, admin, q, "x", &EnqueueOptions{MessageID: "held"})
		next(t, calls)
		changed, err := admin.Inspector().PauseQueue(ctx, q)
		require.NoError(t, err)
		assert.True(t, changed)
		counts, err := admin.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.True(t, counts.Paused)

		enqueue(t, admin, q, "y", &EnqueueOptions{MessageID: "waiting"})
		close(release)
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "held", 1), "the held outcome, recorded while paused")
		// Polls go on and find the queue paused: a few of them, and the
		// message still waits.
		waitKind(t, ev, EventAsleep, 3)
		assert.Equal(t, StatusQueued, statusOf(t, admin, q, "waiting"))
		select {
		case h := <-calls:
			t.Fatalf("%s handed out while paused", h.id)
		default:
		}

		changed, err = admin.Inspector().ResumeQueue(ctx, q)
		require.NoError(t, err)
		assert.True(t, changed)
		assert.Equal(t, "waiting", next(t, calls).id)
		changed, err = admin.Inspector().ResumeQueue(ctx, q)
		require.NoError(t, err)
		assert.False(t, changed, "resumed already")
	})
}

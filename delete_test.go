package mq

import (
	"context"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeleteMessage: a message deleted while its handler runs is gone for
// good; the handler's outcome is fenced off and counted as LockLost only.
func TestDeleteMessage(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()
		q := queuetest.QueueName(t)

		_, err := c.Inspector().DeleteMessage(ctx, "", "m")
		assert.ErrorIs(t, err, ErrInvalidQueueName)
		_, err = c.Inspector().DeleteMessage(ctx, q, "")
		assert.ErrorIs(t, err, ErrInvalidMessageID)

		release := make(chan struct{})
		w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			<-release
			return nil
		})
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "held"})
		next(t, calls)
		deleted, err := c.Inspector().DeleteMessage(ctx, q, "held")
		require.NoError(t, err)
		assert.True(t, deleted)
		close(release)
		assert.Equal(t, OutcomeLockLost, waitHandled(t, ev, "held", 1), "the outcome fenced off")
		assert.Zero(t, w.Stats().Counts.Succeeded)
		assert.Equal(t, StatusNone, statusOf(t, c, q, "held"))

		deleted, err = c.Inspector().DeleteMessage(ctx, q, "held")
		require.NoError(t, err)
		assert.False(t, deleted, "once")
	})
}

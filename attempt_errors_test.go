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

// TestDeadLetterAttemptErrors: a dead letter shows the error of each of
// its message's failed attempts, not only the last (docs/protocol.md §17).
func TestDeadLetterAttemptErrors(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	w, err := c.NewWorker(q, &WorkerConfig{
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			return fmt.Errorf("failure %d", m.Attempt)
		}),
		MaxAttempts:  3,
		RetryBackoff: func(int) time.Duration { return time.Millisecond },
	})
	require.NoError(t, err)
	_, err = c.Enqueue(ctx, q, Raw("x"), &EnqueueOptions{MessageID: "m"})
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	var d DeadLetter
	queuetest.WaitFor(t, "the dead letter", func() bool {
		d, err = c.Inspector().DeadLetter(ctx, q, "m")
		return err == nil
	})
	require.Len(t, d.AttemptErrors, 3)
	for i, e := range d.AttemptErrors {
		assert.Equal(t, int64(i+1), e.Attempt)
		assert.Equal(t, fmt.Sprintf("failure %d", i+1), e.Error)
		assert.False(t, e.At.After(d.Died), "failed before it died")
		assert.False(t, e.At.Before(d.FirstEnqueued))
	}
	assert.Equal(t, "failure 3", d.Error)
}

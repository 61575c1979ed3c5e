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

// TestMessageAttemptErrors: a message still in the queue, in backoff
// before its next attempt, shows the errors of its failed attempts
// (Inspector.Message, in the same script call that reads it).
func TestMessageAttemptErrors(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	w, err := c.NewWorker(q, &WorkerConfig{
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			return fmt.Errorf("failure %d", m.Attempt)
		}),
		MaxAttempts: 5,
		RetryBackoff: func(attempt int) time.Duration {
			if attempt >= 2 {
				return time.Hour // it waits, in the queue, after two
			}
			return time.Millisecond
		},
	})
	require.NoError(t, err)
	_, err = c.Enqueue(ctx, q, Raw("x"), &EnqueueOptions{MessageID: "m"})
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	var m MessageInfo
	queuetest.WaitFor(t, "two attempts failed", func() bool {
		m, err = c.Inspector().Message(ctx, q, "m")
		return err == nil && m.Attempts == 2 && m.Status == StatusQueuedWithBackoff
	})
	require.Len(t, m.AttemptErrors, 2)
	for i, e := range m.AttemptErrors {
		assert.Equal(t, int64(i+1), e.Attempt)
		assert.Equal(t, fmt.Sprintf("failure %d", i+1), e.Error)
		assert.False(t, e.At.Before(m.FirstEnqueued))
	}
	assert.Nil(t, m.DeadLetter)

	// A deleted message takes them along.
	_, err = c.Inspector().DeleteMessage(ctx, q, "m")
	require.NoError(t, err)
	m, err = c.Inspector().Message(ctx, q, "m")
	require.NoError(t, err)
	assert.Nil(t, m.AttemptErrors)
}

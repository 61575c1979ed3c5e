package mq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkersOutcomes: a worker's heartbeat counts its handlings by
// outcome, in the one Outcome vocabulary.
func TestWorkersOutcomes(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	w, err := c.NewWorker(q, &WorkerConfig{
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			if m.ID == "bad" {
				return Final(errors.New("no"))
			}
			return nil
		}),
		heartbeatEvery: testHeartbeatEvery,
		heartbeatTTL:   time.Minute,
	})
	require.NoError(t, err)
	handled, stop := w.Subscribe(EventHandled)
	defer stop()
	for _, id := range []string{"good", "bad"} {
		_, err := c.Enqueue(ctx, q, Raw("x"), &EnqueueOptions{MessageID: id})
		require.NoError(t, err)
	}
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	for range 2 {
		select {
		case <-handled:
		case <-time.After(30 * time.Second):
			t.Fatal("not handled")
		}
	}
	want := map[Outcome]int64{OutcomeSucceeded: 1, OutcomeRetried: 0, OutcomeFailed: 0, OutcomeDead: 1,
		OutcomeLockLost: 0, OutcomeAbandoned: 0, OutcomeCancelled: 0}
	// The next beats tell them.
	require.Eventually(t, func() bool {
		lw, ok := workersOf(t, c, q)[w.ID()]
		return ok && lw.Handled == 2
	}, 30*time.Second, testHeartbeatEvery)
	assert.Equal(t, want, workersOf(t, c, q)[w.ID()].Outcomes)
}

package mq

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPriorityWorkerOrder: a worker handles high messages before normal
// ones and normal ones before low ones (docs/protocol.md §18), each
// handler seeing Message.Priority, and the inspector shows it; on
// miniredis and in the cluster layout too.
func TestPriorityWorkerOrder(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		priorityWorkerOrder(t, s)
	})
}

func priorityWorkerOrder(t *testing.T, s *queuetest.Server) {
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	for _, m := range []struct {
		id string
		p  Priority
	}{{"l1", PriorityLow}, {"n1", PriorityNormal}, {"h1", PriorityHigh}, {"l2", PriorityLow}, {"n2", PriorityNormal}, {"h2", PriorityHigh}} {
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: m.id, Priority: m.p})
	}
	counts, err := c.Inspector().QueueCounts(context.Background(), q)
	require.NoError(t, err)
	assert.Equal(t, QueueCounts{Queued: 6, Total: 6, ReadyHigh: 2, ReadyLow: 2}, counts, "ready by priority")
	info, err := c.Inspector().Message(context.Background(), q, "h1")
	require.NoError(t, err)
	assert.Equal(t, PriorityHigh, info.Priority)
	info, err = c.Inspector().Message(context.Background(), q, "n1")
	require.NoError(t, err)
	assert.Equal(t, PriorityNormal, info.Priority)

	var mu sync.Mutex
	var seen []string
	_, ev := startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, m.ID+":"+m.Priority.String())
			return nil
		})})
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 6})
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"h1:high", "h2:high", "n1:normal", "n2:normal", "l1:low", "l2:low"}, seen)
	counts, err = c.Inspector().QueueCounts(context.Background(), q)
	require.NoError(t, err)
	assert.Zero(t, counts.ReadyHigh+counts.ReadyLow, "ready by priority once handled")
}

// TestPriorityInvalid: a priority that is none of the three is refused
// before anything is written.
func TestPriorityInvalid(t *testing.T) {
	t.Parallel()
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	_, err := c.Enqueue(context.Background(), "q", "x", &EnqueueOptions{Priority: 7})
	require.True(t, errors.Is(err, ErrInvalidOption), "%v", err)
	assert.Equal(t, "Priority(7)", Priority(7).String())
}

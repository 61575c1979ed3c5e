package mq

import (
	"context"
	"slices"
	"testing"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegistryListsEveryQueue: QueueNames gives one answer to "which
// queues exist" (docs/protocol.md §16): a queue with a running worker and
// nothing in it, a queue whose messages were all handled, a queue paused
// before its first message, and a queue only a Carmine producer wrote
// (found by the scan) are all listed; a queue never named is not, and
// QueueExists says so.
func TestRegistryListsEveryQueue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		in := c.Inspector()
		ctx := context.Background()

		// A worker on an empty queue: listed while it runs, by its beats.
		startWorker(t, newClient(t, s, nil), "reg:idle", WorkerConfig{}, nil)
		queuetest.WaitFor(t, "the idle worker's queue listed", func() bool {
			names, err := in.QueueNames(ctx, "")
			require.NoError(t, err)
			return slices.Contains(names, "reg:idle")
		})

		// A queue whose one message was handled and collected.
		_, calls := startWorker(t, c, "reg:handled", WorkerConfig{}, nil)
		enqueue(t, c, "reg:handled", "x", &EnqueueOptions{MessageID: "m"})
		next(t, calls)
		waitStatus(t, c, "reg:handled", "m", StatusNone)

		// Paused before anything was enqueued.
		_, err := in.PauseQueue(ctx, "reg:paused")
		require.NoError(t, err)
		_, err = in.ResumeQueue(ctx, "reg:paused")
		require.NoError(t, err)

		// Written by a Carmine producer alone: no registry entry.
		k := keys.All("reg:carmine", s.Cluster)
		require.NoError(t, s.RDB.HSet(ctx, k[keys.Messages], "c1", "x").Err())
		require.NoError(t, s.RDB.HSet(ctx, k[keys.UDTs], "c1", "1").Err())

		names, err := in.QueueNames(ctx, "reg:*")
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:carmine", "reg:handled", "reg:idle", "reg:paused"}, names)
		names, err = in.QueueNames(ctx, "reg:[hp]*")
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:handled", "reg:paused"}, names, "the pattern filters the registry as SCAN MATCH does")

		for _, q := range []string{"reg:carmine", "reg:handled", "reg:idle", "reg:paused"} {
			ok, err := in.QueueExists(ctx, q)
			require.NoError(t, err)
			assert.True(t, ok, q)
		}
		ok, err := in.QueueExists(ctx, "reg:emials")
		require.NoError(t, err)
		assert.False(t, ok, "a queue never named does not exist")
		_, err = in.QueueExists(ctx, "a*")
		assert.ErrorIs(t, err, ErrInvalidQueueName)
	})
}

// TestRegistryClearedQueueLeaves: ClearQueues takes a queue out of the
// registry, so that QueueNames no longer lists it and QueueExists says
// no; the same client's next enqueue registers it again; a worker still
// running on a cleared queue registers it again with its next beat.
func TestRegistryClearedQueueLeaves(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		in := c.Inspector()
		ctx := context.Background()
		_, calls := startWorker(t, c, "reg:a", WorkerConfig{}, nil)
		enqueue(t, c, "reg:a", "x", &EnqueueOptions{MessageID: "m"})
		next(t, calls)
		waitStatus(t, c, "reg:a", "m", StatusNone)
		enqueue(t, c, "reg:b", "x", nil)

		cleared, err := in.ClearQueues(ctx, "reg:b", "reg:none")
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:b"}, cleared)
		names, err := in.QueueNames(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:a"}, names, "reg:b cleared")
		ok, err := in.QueueExists(ctx, "reg:b")
		require.NoError(t, err)
		assert.False(t, ok)

		enqueue(t, c, "reg:b", "y", nil)
		require.NoError(t, s.RDB.Del(ctx, keys.All("reg:b", s.Cluster)...).Err())
		ok, err = in.QueueExists(ctx, "reg:b")
		require.NoError(t, err)
		assert.True(t, ok, "enqueued again after the clear: registered again, though its keys are gone")

		// reg:a is empty and has a worker: cleared, it comes back with
		// the worker's next beat (a beat every 5 s: wait for it).
		cleared, err = in.ClearAllQueues(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:a", "reg:b"}, cleared, "registered queues are cleared, empty or not")
		queuetest.WaitFor(t, "the worker's beat to register its queue again", func() bool {
			ok, err := in.QueueExists(ctx, "reg:a")
			require.NoError(t, err)
			return ok
		})
		names, err = in.QueueNames(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"reg:a"}, names)
	})
}

// TestRegistryAllWorkers: AllWorkers lists the live workers of every
// queue, with no queue name to give.
func TestRegistryAllWorkers(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()
		w1, _ := startWorker(t, c, "reg:one", WorkerConfig{}, nil)
		w2, _ := startWorker(t, c, "reg:two", WorkerConfig{}, nil)
		queuetest.WaitFor(t, "both workers listed", func() bool {
			ws, err := c.Inspector().AllWorkers(ctx)
			require.NoError(t, err)
			return len(ws) == 2
		})
		ws, err := c.Inspector().AllWorkers(ctx)
		require.NoError(t, err)
		require.Len(t, ws, 2)
		assert.Equal(t, []string{w1.ID(), w2.ID()}, []string{ws[0].ID, ws[1].ID})
		assert.Equal(t, []string{"reg:one", "reg:two"}, []string{ws[0].Queue, ws[1].Queue})
	})
}

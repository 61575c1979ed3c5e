package mq

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEnqueueRefusedWhenFull: with Redis over maxmemory (noeviction), an
// enqueue is refused with ErrRedisFull and writes nothing, while a worker
// goes on polling, handling and collecting, which frees memory.
func TestEnqueueRefusedWhenFull(t *testing.T) {
	s := queuetest.RealServer(t, "--maxmemory-policy", "noeviction")
	c := newClient(t, s, nil)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	for i := range 20 {
		enqueue(t, c, q, i, &EnqueueOptions{MessageID: "m" + strconv.Itoa(i)})
	}
	// Fill Redis past a limit set just above what it uses now.
	used := func() int64 {
		info, err := s.RDB.InfoMap(ctx, "memory").Result()
		require.NoError(t, err)
		n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
		require.NoError(t, err)
		return n
	}
	require.NoError(t, s.RDB.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, s.RDB.Set(ctx, "ballast", make([]byte, 8<<20), 0).Err())
	require.NoError(t, s.RDB.ConfigSet(ctx, "maxmemory", "4mb").Err())
	require.Greater(t, used(), int64(4<<20))

	// That a refused call writes no key is internal/protocol's
	// TestEnqueueRefusedWhenFull; here, what the Inspector shows.
	in := c.Inspector()
	countsBefore, err := in.QueueCounts(ctx, q)
	require.NoError(t, err)
	m0Before, err := in.Message(ctx, q, "m0")
	require.NoError(t, err)
	_, err = c.Enqueue(ctx, q, make([]byte, 100<<10), nil)
	require.ErrorIs(t, err, ErrRedisFull)
	// An id the queue holds already, first of its call: refused as well,
	// before the update writes anything.
	_, err = c.Enqueue(ctx, q, "new content", &EnqueueOptions{MessageID: "m0", CanUpdate: true, LockTime: time.Second})
	require.ErrorIs(t, err, ErrRedisFull)
	_, err = c.Enqueue(ctx, q, "x", &EnqueueOptions{MessageID: "m1", ResetInitialBackoff: true, InitialBackoff: time.Hour})
	require.ErrorIs(t, err, ErrRedisFull)
	res, err := c.EnqueueMany(ctx, q, EnqueueRequest{Message: "a"}, EnqueueRequest{Message: "b"})
	require.ErrorIs(t, err, ErrRedisFull)
	for _, r := range res {
		assert.Empty(t, r.Action, "no answer: the call failed")
	}
	counts, err := in.QueueCounts(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, countsBefore, counts, "nothing written")
	m0, err := in.Message(ctx, q, "m0")
	require.NoError(t, err)
	m0.Age, m0Before.Age = 0, 0
	assert.Equal(t, m0Before, m0, "m0 not updated")
	m1, err := in.Message(ctx, q, "m1")
	require.NoError(t, err)
	assert.Zero(t, m1.Backoff, "m1's backoff not reset")

	// The worker drains the queue all the same.
	w, _, ev := startWorkerEvents(t, c, q, WorkerConfig{}, nil)
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 20})
	qc, err := c.Inspector().QueueCounts(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, QueueCounts{}, qc, "every message collected")
	assert.Zero(t, w.Stats().Counts.PollErrors, "no poll refused")
	assert.Zero(t, w.Stats().Counts.LockLost)
}

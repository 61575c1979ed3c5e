package mq

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkersWarnOfASmallPool: without the sleep hub (in cluster mode), a
// worker warns at its start when the polling loops of the client's running
// workers could hold more than half of the Redis client's connection pool
// in their sleeps, and loops of stopped workers no longer count. With the
// hub, they share one connection, and nobody warns.
func TestWorkersWarnOfASmallPool(t *testing.T) {
	s := queuetest.RealServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr, PoolSize: 4})
	t.Cleanup(func() { rdb.Close() })
	logs := &lockedBuffer{}
	hubbed, err := New(rdb, &Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	for _, q := range []string{"hub:a", "hub:b", "hub:c", "hub:d"} {
		w, err := hubbed.StartWorker(t.Context(), q, &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
	}
	require.Zero(t, strings.Count(logs.String(), "polling loops"), "4 loops sharing the hub's connection")

	c, err := New(rdb, &Config{Cluster: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	warnings := func() int { return strings.Count(logs.String(), "polling loops") }

	start := func(q string) *Worker {
		t.Helper()
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		return w
	}
	a, b := start("pool:a"), start("pool:b")
	assert.Zero(t, warnings(), "2 loops in a pool of 4")
	third := start("pool:c")
	assert.Equal(t, 1, warnings(), "3 loops in a pool of 4")
	assert.Contains(t, logs.String(), "level=WARN")

	require.NoError(t, third.Stop(context.Background()))
	require.NoError(t, b.Stop(context.Background()))
	// Start waits for the last run to end, so the count is down once it
	// returns.
	require.NoError(t, b.Start(t.Context()))
	assert.Equal(t, 1, warnings(), "2 loops again")
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}

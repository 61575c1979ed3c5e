package mq

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdleWorkersShareOneConnection: twenty idle workers of twenty queues
// on one client with a pool of four connections: sleeping, they hold one
// connection between them (the sleep hub), so enqueues through the same
// client never wait for a connection (the pool would time out), and every
// message wakes its worker at once.
func TestIdleWorkersShareOneConnection(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	// Were the sleepers to hold a connection each, four of them would hold
	// the pool and the rest would never fall asleep, however long the pool
	// timeout. Woken, twenty polls share four connections: under a loaded
	// machine one waited past a 300 ms pool timeout, so it is 5 s.
	rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr, PoolSize: 4, PoolTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	const queues = 20
	var mu sync.Mutex
	handled := map[string]bool{}
	for i := range queues {
		_, ev := startSubscribed(t, c, fmt.Sprintf("hub-%d", i), &WorkerConfig{
			EndOfQueueBackoff: Constant(time.Hour),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				mu.Lock()
				handled[m.ID] = true
				mu.Unlock()
				return nil
			}),
		})
		waitAsleep(t, ev)
	}
	assert.True(t, c.hubWorks())
	for round := range 3 {
		for i := range queues {
			id := fmt.Sprintf("m%d-%d", i, round)
			_, err := c.Enqueue(context.Background(), fmt.Sprintf("hub-%d", i), "x", &EnqueueOptions{MessageID: id})
			require.NoError(t, err, "no wait for a pooled connection")
		}
		queuetest.WaitFor(t, "every message handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(handled) == queues*(round+1)
		})
	}
	stats := rdb.PoolStats()
	assert.Zero(t, stats.Timeouts, "no call waited past the pool's timeout")
}

package redistest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gocarmine/mq/internal/redistest"
)

func TestSentinelStartsAndFailsOver(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := redistest.StartSentinel(t)
	t.Logf("primary, replica and %d sentinels up in %v", len(s.SentinelAddrs), time.Since(start).Round(time.Millisecond))
	require.Equal(t, "mymaster", s.MasterName)
	require.Len(t, s.SentinelAddrs, 3)
	require.Len(t, s.Nodes, 2)
	require.Equal(t, s.Nodes[0].Addr, s.MasterAddr(t))

	c := s.Client(t)
	ctx := pingCtx(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	// Let the replica catch up: this failover is not graceful.
	require.NoError(t, c.Do(ctx, "wait", 1, 1000).Err())

	start = time.Now()
	newPrimary := s.Failover(t)
	t.Logf("failover to %s took %v", newPrimary, time.Since(start).Round(time.Millisecond))
	require.Equal(t, s.Nodes[1].Addr, newPrimary)
	require.Equal(t, newPrimary, s.MasterAddr(t))

	ctx = pingCtx(t)
	require.Eventually(t, func() bool {
		return c.Set(ctx, "k2", "v2", 0).Err() == nil
	}, 10*time.Second, 50*time.Millisecond, "the failover client writes to the new primary")
	v, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)

	// And back again.
	require.Equal(t, s.Nodes[0].Addr, s.Failover(t))
}

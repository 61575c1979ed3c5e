package redistest_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/gocarmine/mq/internal/redistest"
)

// TestSharedCluster: a leased cluster is the test's alone, and the next
// test gets it back empty, with an empty script cache.
func TestSharedCluster(t *testing.T) {
	t.Parallel()
	var first []string
	t.Run("first", func(t *testing.T) {
		c := redistest.SharedCluster(t)
		first = c.Addrs
		require.Len(t, c.Masters(t), 3)
		cc := c.Client(t)
		ctx := pingCtx(t)
		require.NoError(t, cc.Set(ctx, "k", "v", 0).Err())
		require.NoError(t, cc.ScriptLoad(ctx, "return 1").Err())

		// A second lease while the first runs is another cluster.
		t.Run("concurrent", func(t *testing.T) {
			other := redistest.SharedCluster(t)
			require.NotEqual(t, c.Addrs, other.Addrs)
		})
	})
	t.Run("next", func(t *testing.T) {
		c := redistest.SharedCluster(t)
		// The last given back is leased first: first's, not concurrent's.
		require.Equal(t, first, c.Addrs, "a cluster given back is used again")
		assertFresh(t, c.Client(t))
	})
}

// TestSharedSentinel: as TestSharedCluster, for Sentinel.
func TestSharedSentinel(t *testing.T) {
	t.Parallel()
	var first []string
	t.Run("first", func(t *testing.T) {
		s := redistest.SharedSentinel(t)
		first = s.SentinelAddrs
		c := s.Client(t)
		ctx := pingCtx(t)
		require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
		require.NoError(t, c.ScriptLoad(ctx, "return 1").Err())
	})
	t.Run("next", func(t *testing.T) {
		s := redistest.SharedSentinel(t)
		require.Equal(t, first, s.SentinelAddrs, "a deployment given back is used again")
		require.Equal(t, s.Nodes[0].Addr, s.MasterAddr(t))
		assertFresh(t, s.Client(t))
	})
}

// assertFresh checks that c's deployment holds no key and no script.
func assertFresh(t *testing.T, c interface {
	Exists(context.Context, ...string) *redis.IntCmd
	ScriptExists(context.Context, ...string) *redis.BoolSliceCmd
}) {
	t.Helper()
	ctx := pingCtx(t)
	n, err := c.Exists(ctx, "k").Result()
	require.NoError(t, err)
	require.Zero(t, n, "keys are flushed")
	ex, err := c.ScriptExists(ctx, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db").Result() // SHA1 of "return 1"
	require.NoError(t, err)
	require.Equal(t, []bool{false}, ex, "scripts are flushed")
}

package redistest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gocarmine/mq/internal/redistest"
)

func TestClusterStartsAndFailsOver(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := redistest.StartCluster(t)
	t.Logf("cluster of %d nodes up in %v", len(c.Addrs), time.Since(start).Round(time.Millisecond))
	require.Len(t, c.Addrs, 6)
	for _, a := range c.Addrs {
		require.True(t, strings.HasPrefix(a, "127.0.0.1:"), a)
		require.NotEqual(t, "127.0.0.1:6379", a)
	}

	masters := c.Masters(t)
	require.Len(t, masters, 3)
	for _, m := range masters {
		require.Len(t, m.Replicas, 1, "master %s", m.Addr)
		require.NotContains(t, masters, m.Replicas[0])
	}

	cc := c.Client(t)
	ctx := pingCtx(t)
	for i := range 30 {
		require.NoError(t, cc.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err())
	}
	// The keys spread over all three masters.
	used := map[string]bool{}
	for i := range 30 {
		used[c.MasterFor(t, fmt.Sprintf("k%d", i)).Addr] = true
	}
	require.Len(t, used, 3)

	// A graceful failover keeps the data and the client follows it.
	m := c.MasterFor(t, "k0")
	start = time.Now()
	newMaster := c.Failover(t, m.Addr)
	t.Logf("failover of %s to %s took %v", m.Addr, newMaster, time.Since(start).Round(time.Millisecond))
	require.Equal(t, m.Replicas[0], newMaster)
	after := c.MasterFor(t, "k0")
	require.Equal(t, newMaster, after.Addr)
	require.Equal(t, []string{m.Addr}, after.Replicas)
	v, err := cc.Get(ctx, "k0").Int()
	require.NoError(t, err)
	require.Equal(t, 0, v)
	require.NoError(t, cc.Set(ctx, "k0", "after", 0).Err())
}

func TestClusterMissingBinary(t *testing.T) {
	// Not parallel: it changes the environment.
	t.Setenv("PATH", t.TempDir())
	t.Setenv("MQ_REQUIRE_REDIS", "")
	t.Setenv("CI", "")
	for _, start := range []func(testing.TB){
		func(tb testing.TB) { redistest.StartCluster(tb) },
		func(tb testing.TB) { redistest.StartSentinel(tb) },
	} {
		ft := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			start(ft)
		}()
		<-done
		require.True(t, ft.skipped, "missing redis-server skips by default")
		require.Contains(t, ft.msg, "MQ_REQUIRE_REDIS")
	}
}

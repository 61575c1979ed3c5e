package queuetest

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Server is one Redis a test runs against: a miniredis (fast, time under
// control), a throwaway real redis-server (the truth for Lua, blocking
// commands and persistence), or a Redis Cluster of three masters and three
// replicas, used in cluster mode, leased for the test from the shared ones
// (redistest.SharedCluster: the test's alone, and empty).
type Server struct {
	RDB     redis.UniversalClient
	Cluster bool
	Mini    *miniredis.Miniredis // only on miniredis
	Real    *redistest.Server    // only on a single redis-server
}

// OnEachServer runs fn as parallel subtests on a fresh miniredis, a fresh
// redis-server and a Redis Cluster leased empty for the subtest: fn must
// not kill, fail over or reconfigure the cluster's nodes. It marks t
// parallel too (the servers are t's own), so the caller must not call
// t.Parallel.
func OnEachServer(t *testing.T, fn func(t *testing.T, s *Server)) {
	t.Helper()
	t.Parallel()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		fn(t, MiniServer(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, RealServer(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.SharedCluster(t)
		fn(t, &Server{RDB: c.Client(t), Cluster: true})
	})
}

// MiniServer starts a miniredis for the test, with a client.
func MiniServer(t *testing.T) *Server {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return &Server{RDB: rdb, Mini: m}
}

// RealServer starts a throwaway redis-server for the test, with args.
func RealServer(t *testing.T, args ...string) *Server {
	r := redistest.Start(t, args...)
	return &Server{RDB: r.Client(t), Real: r}
}

// WaitFor polls cond until it holds, failing the test after a generous
// deadline; it synchronises on state, not on time. Prefer a worker's
// events (mq.Worker.Subscribe) where there is one to wait on.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

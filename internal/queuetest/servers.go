package queuetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq/internal/keys"
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

// Key names one key of queue q, in the server's layout.
func (s *Server) Key(q string, i keys.Index) string { return keys.Key(q, s.Cluster, i) }

// Keys returns every key of queue q in the server's layout, in the
// scripts' order.
func (s *Server) Keys(q string) []string { return keys.All(q, s.Cluster) }

// Now is the server's clock in Unix milliseconds.
func (s *Server) Now(tb testing.TB) int64 {
	tb.Helper()
	tm, err := s.RDB.Time(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return tm.UnixMilli()
}

// FollowClock makes a miniredis's clock the wall clock's, frozen, so that
// AwaitClock can move it; a real server's runs on its own.
func (s *Server) FollowClock() {
	if s.Mini != nil {
		s.Mini.SetTime(time.Now())
	}
}

// AwaitClock returns once the server's clock is more than ms past what it
// reads now: a miniredis's is moved there (see FollowClock), a real
// server's is waited for.
func (s *Server) AwaitClock(tb testing.TB, ms int64) {
	tb.Helper()
	until := s.Now(tb) + ms
	if s.Mini != nil {
		s.Mini.SetTime(time.UnixMilli(until + 1))
		return
	}
	WaitFor(tb, "the server's clock", func() bool { return s.Now(tb) > until })
}

// QueueName is a queue name unique to the test.
func QueueName(tb testing.TB) string {
	r := strings.NewReplacer("/", ".", " ", "_", "*", "", "?", "", "[", "", "]", "", "{", "", "}", "", "\\", "")
	return "test:" + r.Replace(tb.Name())
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

// MiniServer starts a miniredis for the test, with a client. miniredis
// runs scripts in Go, one command at a time: under -race, on a loaded
// machine, a big call can take longer than go-redis's 3 s default read
// timeout, which would fail the test for the machine's load; its client
// waits longer.
func MiniServer(t *testing.T) *Server {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
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

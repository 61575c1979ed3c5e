package mq

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is one Redis a test runs against: a miniredis (fast, time under
// control) or a throwaway real redis-server (the truth for Lua, blocking
// commands and persistence).
type server struct {
	rdb  *redis.Client
	mini *miniredis.Miniredis // nil on real Redis
	real *redistest.Server    // nil on miniredis
}

// onBoth runs fn as two parallel subtests, on a fresh miniredis and on a
// fresh redis-server.
func onBoth(t *testing.T, fn func(t *testing.T, s *server)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		fn(t, newMiniServer(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, newRealServer(t))
	})
}

func newMiniServer(t *testing.T) *server {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return &server{rdb: rdb, mini: m}
}

func newRealServer(t *testing.T, args ...string) *server {
	r := redistest.Start(t, args...)
	return &server{rdb: r.Client(t), real: r}
}

// client returns a Client on the server, with logs going to the test log.
func (s *server) client(t *testing.T, cfg *Config) *Client {
	t.Helper()
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = testLogger(t)
	}
	cl, err := New(s.rdb, &c)
	require.NoError(t, err)
	return cl
}

// now is the server's clock in Unix milliseconds.
func (s *server) now(t *testing.T) int64 {
	t.Helper()
	tm, err := s.rdb.Time(context.Background()).Result()
	require.NoError(t, err)
	return tm.UnixMilli()
}

// key names one key of queue q (plain layout).
func key(q string, i keys.Index) string { return keys.Key(q, false, i) }

// queueName is a queue name unique to the test.
func queueName(t *testing.T) string {
	r := strings.NewReplacer("/", ".", " ", "_", "*", "", "?", "", "[", "", "]", "", "{", "", "}", "", "\\", "")
	return "test:" + r.Replace(t.Name())
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline; it synchronises on state, not on time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

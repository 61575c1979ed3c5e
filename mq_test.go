package mq

import (
	"context"
	"flag"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Most tests here spend their time waiting: for Redis, for a lock or a
	// backoff to run out, for a failover. By default go test runs only
	// GOMAXPROCS parallel tests at once, which leaves the CPUs idle most of
	// the time; run more, unless -parallel says otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", strconv.Itoa(3*runtime.GOMAXPROCS(0))); err != nil {
			panic(err)
		}
	}
	// The shared clusters stop before goleak looks for leaked goroutines.
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// server is one Redis a test runs against: a miniredis (fast, time under
// control), a throwaway real redis-server (the truth for Lua, blocking
// commands and persistence), or a Redis Cluster of three masters and three
// replicas, used in cluster mode, leased for the test from the shared ones
// (redistest.SharedCluster: the test's alone, and empty).
type server struct {
	rdb     redis.UniversalClient
	cluster bool
	mini    *miniredis.Miniredis // only on miniredis
	real    *redistest.Server    // only on a single redis-server
}

// onEachServer runs fn on each kind of server (queuetest.OnEachServer),
// as parallel subtests; the caller must not call t.Parallel.
func onEachServer(t *testing.T, fn func(t *testing.T, s *server)) {
	t.Helper()
	queuetest.OnEachServer(t, func(t *testing.T, qs *queuetest.Server) { fn(t, fromQueuetest(qs)) })
}

func fromQueuetest(qs *queuetest.Server) *server {
	return &server{rdb: qs.RDB, cluster: qs.Cluster, mini: qs.Mini, real: qs.Real}
}

// nopHandler answers success without looking at the message.
var nopHandler = HandlerFunc(func(context.Context, *Message) error { return nil })

func newMiniServer(t *testing.T) *server { return fromQueuetest(queuetest.MiniServer(t)) }

func newRealServer(t *testing.T, args ...string) *server {
	return fromQueuetest(queuetest.RealServer(t, args...))
}

// client returns a Client on the server, with logs going to the test log.
func (s *server) client(t *testing.T, cfg *Config) *Client {
	t.Helper()
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Cluster = s.cluster
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

// key names one key of queue q, in the server's layout.
func (s *server) key(q string, i keys.Index) string { return keys.Key(q, s.cluster, i) }

// queueName is a queue name unique to the test.
func queueName(t *testing.T) string {
	r := strings.NewReplacer("/", ".", " ", "_", "*", "", "?", "", "[", "", "]", "", "{", "", "}", "", "\\", "")
	return "test:" + r.Replace(t.Name())
}

// waitFor polls cond until it holds (queuetest.WaitFor).
var waitFor = queuetest.WaitFor

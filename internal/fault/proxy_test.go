package fault

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/gocarmine/mq/internal/redistest"
)

// rawConn is a connection that speaks RESP by hand, for exact counts.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	rr   *respReader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return &rawConn{t: t, conn: conn, rr: newRESPReader(conn)}
}

// send writes the commands in one write (a pipeline).
func (c *rawConn) send(cmds ...[]string) {
	c.t.Helper()
	var b strings.Builder
	for _, args := range cmds {
		b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
		for _, a := range args {
			b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
	}
	_, err := c.conn.Write([]byte(b.String()))
	require.NoError(c.t, err)
}

// read reads one reply, or returns the error.
func (c *rawConn) read() (string, error) {
	f, err := c.rr.reply()
	return string(f.raw), err
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestProxyTransparent: through a passing proxy, RESP3 replies of every
// kind Redis sends arrive byte for byte as they come from Redis directly,
// and a pipeline of many requests in one write is counted request by
// request.
func TestProxyTransparent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := NewProxy(t, srv.Addr, 1)
	setup := srv.Client(t)
	ctx := ctx10(t)
	require.NoError(t, setup.HSet(ctx, "h", "a", "1", "b", "2").Err())
	require.NoError(t, setup.SAdd(ctx, "s", "x").Err())
	require.NoError(t, setup.ZAdd(ctx, "z", redis.Z{Score: 1.5, Member: "m"}).Err())

	script := [][]string{
		{"HELLO", "3"},
		{"SET", "k", "v"}, {"GET", "k"}, {"GET", "missing"}, {"INCR", "n"},
		{"HGETALL", "h"}, {"SMEMBERS", "s"}, {"ZSCORE", "z", "m"},
		{"EVAL", "redis.setresp(3); return {double=2.5}", "0"},
		{"EVAL", "redis.setresp(3); return true", "0"},
		{"EVAL", "redis.setresp(3); return {big_number='123456789012345678901234567890'}", "0"},
		{"EVAL", "redis.setresp(3); return {map={a=1}}", "0"},
		{"EVAL", "redis.setresp(3); return {set={a=true}}", "0"},
		{"EVAL", "return redis.error_reply('NOPE')", "0"},
		{"NOSUCHCOMMAND"},
		{"DEL", "k", "n"},
	}
	var want, got []string
	for _, addr := range []string{srv.Addr, p.Addr} {
		c := dialRaw(t, addr)
		c.send(script...)
		var replies []string
		for range script {
			r, err := c.read()
			require.NoError(t, err)
			replies = append(replies, r)
		}
		if addr == srv.Addr {
			want = replies
		} else {
			got = replies
		}
	}
	// HELLO answers with the connection's id, which differs.
	require.Equal(t, want[1:], got[1:])
	st := p.Stats()
	require.Equal(t, int64(len(script)), st.Requests)
	require.Equal(t, int64(len(script)), st.Replies)
	require.Zero(t, st.Dropped+st.Delayed+st.Swallowed)

	// go-redis (RESP3 by default) works through it, pipelines included.
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
	defer rdb.Close()
	cmds, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for range 100 {
			pipe.Incr(ctx, "counter")
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(100), cmds[99].(*redis.IntCmd).Val())
	m, err := rdb.HGetAll(ctx, "h").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "1", "b": "2"}, m)
	st = p.Stats()
	require.Equal(t, st.Requests, st.Replies, "every request answered once")
}

// TestProxyDropAfterApply: a dropped reply closes the connection after
// Redis applied the command. A client without retries sees an error for
// a write that happened; go-redis with its default retries sends it again,
// and Redis applies it twice.
func TestProxyDropAfterApply(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	direct := srv.Client(t)
	p := NewProxy(t, srv.Addr, 1)
	var notified atomic.Int64
	p.Notify(func(a Action, cmd string) {
		if a == Drop && cmd == "incr" {
			notified.Add(1)
		}
	})
	ctx := ctx10(t)

	noRetry := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer noRetry.Close()
	require.NoError(t, noRetry.Ping(ctx).Err()) // connect before the rule
	p.Set(Rule{Action: Drop, Next: 1, Commands: []string{"incr"}})
	require.Error(t, noRetry.Incr(ctx, "a").Err(), "the reply never came")
	n, err := direct.Get(ctx, "a").Int()
	require.NoError(t, err)
	require.Equal(t, 1, n, "Redis applied it")

	retrying := redis.NewClient(&redis.Options{Addr: p.Addr})
	defer retrying.Close()
	require.NoError(t, retrying.Ping(ctx).Err())
	p.Set(Rule{Action: Drop, Next: 1, Commands: []string{"incr"}})
	got, err := retrying.Incr(ctx, "b").Result()
	require.NoError(t, err)
	require.Equal(t, int64(2), got, "go-redis sent the INCR again and Redis applied both")

	require.Equal(t, int64(2), p.Stats().Dropped)
	require.Equal(t, int64(2), notified.Load())
	// Next picks exactly that many: the rule is spent.
	require.NoError(t, retrying.Incr(ctx, "b").Err())
	require.Equal(t, int64(2), p.Stats().Dropped)
}

// TestProxyDropInPipeline: a drop part way through a pipeline delivers
// the replies before it, then closes the connection.
func TestProxyDropInPipeline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := NewProxy(t, srv.Addr, 1)
	p.Set(Rule{Action: Drop, Next: 1, Commands: []string{"get"}})
	c := dialRaw(t, p.Addr)
	c.send([]string{"INCR", "x"}, []string{"INCR", "x"}, []string{"INCR", "x"},
		[]string{"GET", "x"}, []string{"INCR", "x"}, []string{"INCR", "x"})
	for _, want := range []string{":1\r\n", ":2\r\n", ":3\r\n"} {
		r, err := c.read()
		require.NoError(t, err)
		require.Equal(t, want, r)
	}
	_, err := c.read()
	require.Error(t, err, "the connection closes at the dropped reply")
	require.Equal(t, int64(1), p.Stats().Dropped)
	require.Equal(t, int64(3), p.Stats().Replies)
}

// TestProxyDropProbability: with a probability, drops are drawn per reply;
// every drop is one failed call of a client without retries.
func TestProxyDropProbability(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := NewProxy(t, srv.Addr, 7)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer rdb.Close()
	ctx := ctx10(t)
	require.NoError(t, rdb.Ping(ctx).Err())
	p.Set(Rule{Action: Drop, Probability: 0.25, Commands: []string{"ping"}})
	failed := 0
	for range 400 {
		if rdb.Ping(ctx).Err() != nil {
			failed++
		}
	}
	st := p.Stats()
	require.Equal(t, int64(failed), st.Dropped)
	// 400 draws at 25%: 100 expected; the bounds are 8 standard deviations
	// wide, so the seeded draw cannot miss them.
	require.InDelta(t, 100, failed, 70)
}

// TestProxyDelay: a delayed reply comes no sooner than the delay; a client
// whose read gives up first gets no answer for a command Redis applied.
func TestProxyDelay(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	direct := srv.Client(t)
	p := NewProxy(t, srv.Addr, 1)
	ctx := ctx10(t)

	rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(ctx).Err())
	const d = 300 * time.Millisecond
	p.Set(Rule{Action: Delay, Next: 1, Delay: d})
	start := time.Now()
	require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
	require.GreaterOrEqual(t, time.Since(start), d)
	require.Equal(t, int64(1), p.Stats().Delayed)

	// A reader that gives up before the delay ends never sees the reply,
	// though Redis applied the command: the proxy holds it back for d.
	c := dialRaw(t, p.Addr)
	p.Set(Rule{Action: Delay, Next: 1, Delay: time.Second, Commands: []string{"incr"}})
	c.send([]string{"INCR", "late"})
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err := c.read()
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "the read times out: %v", err)
	n, err := direct.Get(ctx, "late").Int()
	require.NoError(t, err)
	require.Equal(t, 1, n, "Redis applied it")
}

// TestProxyBlackhole: a blackholed proxy reads and never answers, and
// new connections after the rule is lifted work again.
func TestProxyBlackhole(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	direct := srv.Client(t)
	p := NewProxy(t, srv.Addr, 1)
	ctx := ctx10(t)
	p.Set(Rule{Action: Blackhole})
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, ReadTimeout: 100 * time.Millisecond,
		MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer rdb.Close()
	require.Error(t, rdb.Set(ctx, "k", "v", 0).Err())
	require.Positive(t, p.Stats().Swallowed)
	require.Zero(t, direct.Exists(ctx, "k").Val(), "a swallowed request never reaches Redis")

	p.Set(Rule{})
	again := redis.NewClient(&redis.Options{Addr: p.Addr})
	defer again.Close()
	require.NoError(t, again.Set(ctx, "k", "v", 0).Err(), "a new connection passes again")
	require.Equal(t, int64(1), direct.Exists(ctx, "k").Val())
}

// TestProxyClose: closing the proxy ends its connections and refuses new
// ones.
func TestProxyClose(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := NewProxy(t, srv.Addr, 1)
	c := dialRaw(t, p.Addr)
	c.send([]string{"PING"})
	r, err := c.read()
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", r)
	p.Close()
	p.Close()
	_, err = c.read()
	require.Error(t, err)
	_, err = net.DialTimeout("tcp", p.Addr, time.Second)
	require.Error(t, err)
}

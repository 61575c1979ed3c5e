package redistest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gocarmine/mq/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// pingCtx bounds each call so a dead server fails fast instead of hanging.
func pingCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartServes(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	require.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"), "Addr = %q", s.Addr)
	require.NotEqual(t, "127.0.0.1:6379", s.Addr)

	c := s.Client(t)
	ctx := pingCtx(t)
	require.NoError(t, c.Ping(ctx).Err())
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	v, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)

	// Persistence is off by default.
	cfg, err := c.ConfigGet(ctx, "appendonly").Result()
	require.NoError(t, err)
	require.Equal(t, "no", cfg["appendonly"])
	cfg, err = c.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	require.Equal(t, "", cfg["save"])
}

func TestStartsUseDifferentPorts(t *testing.T) {
	t.Parallel()
	a := redistest.Start(t)
	b := redistest.Start(t)
	require.NotEqual(t, a.Addr, b.Addr)

	ctx := pingCtx(t)
	ca, cb := a.Client(t), b.Client(t)
	require.NoError(t, ca.Set(ctx, "k", "a", 0).Err())
	require.NoError(t, cb.Set(ctx, "k", "b", 0).Err())
	v, err := ca.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "a", v, "the two servers must not share data")
}

func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := pingCtx(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Kill(t)
	require.Error(t, c.Ping(ctx).Err(), "PING must fail after Kill")
	s.Kill(t) // killing a dead server is a no-op

	addr := s.Addr
	s.Restart(t)
	require.Equal(t, addr, s.Addr, "Restart keeps the address")
	require.NoError(t, c.Ping(ctx).Err())
	n, err := c.Exists(ctx, "k").Result()
	require.NoError(t, err)
	require.Zero(t, n, "data must be gone: persistence is off")

	// Restart of a running server kills it first.
	s.Restart(t)
	require.NoError(t, c.Ping(ctx).Err())
}

func TestRestartKeepsAppendOnlyData(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := s.Client(t)
	ctx := pingCtx(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	s.Kill(t)
	s.Restart(t)
	v, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v, "extra args are kept across Restart")
}

func TestBadArgsFail(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	// Run Start in a fake TB so its failure does not fail this test.
	ft := &fakeTB{TB: t}
	inGoroutine(func() { redistest.Start(ft, "--no-such-option", "x") })
	require.True(t, ft.failed, "Start must fail on a server that does not come up")
	require.Contains(t, ft.msg, "no-such-option", "failure quotes the log tail")
	t.Log(ft.msg)
}

func TestRestartFailsWhenPortTaken(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Kill(t)
	l, err := net.Listen("tcp", s.Addr)
	require.NoError(t, err, "the port is free after Kill")
	defer l.Close()

	ft := &fakeTB{TB: t}
	inGoroutine(func() { s.Restart(ft) })
	require.True(t, ft.failed, "Restart must fail when the port is taken")
	require.Contains(t, ft.msg, "in use")
	t.Log(ft.msg)
}

// TestRestartFailsWhenAnotherRedisHoldsThePort is the case where a PONG
// alone would lie: the port answers, but from another redis-server, while
// the restarted one fails to bind and exits.
func TestRestartFailsWhenAnotherRedisHoldsThePort(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Kill(t)
	_, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	other := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, other.Start())
	t.Cleanup(func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	})
	c := s.Client(t)
	require.Eventually(t, func() bool { return c.Ping(pingCtx(t)).Err() == nil },
		10*time.Second, 10*time.Millisecond, "the other server comes up")

	ft := &fakeTB{TB: t}
	inGoroutine(func() { s.Restart(ft) })
	require.True(t, ft.failed, "Restart must not take another server's PONG for its own")
	require.Contains(t, ft.msg, "in use")
	t.Log(ft.msg)
}

func TestMissingBinary(t *testing.T) {
	// Not parallel: it changes the environment.
	t.Setenv("PATH", t.TempDir())
	t.Setenv("MQ_REQUIRE_REDIS", "")
	t.Setenv("CI", "")

	ft := &fakeTB{TB: t}
	run := func() {
		inGoroutine(func() { redistest.Start(ft) })
	}
	run()
	require.True(t, ft.skipped, "missing redis-server skips by default")
	require.Contains(t, ft.msg, "MQ_REQUIRE_REDIS")
	t.Log(ft.msg)

	ft = &fakeTB{TB: t}
	os.Setenv("MQ_REQUIRE_REDIS", "1") // restored by t.Setenv above
	run()
	require.True(t, ft.failed, "missing redis-server fails when MQ_REQUIRE_REDIS=1")

	ft = &fakeTB{TB: t}
	os.Setenv("MQ_REQUIRE_REDIS", "")
	os.Setenv("CI", "true")
	run()
	require.True(t, ft.failed, "missing redis-server fails when CI=true")
}

// inGoroutine runs fn in a goroutine of its own and waits for it: fakeTB's
// Fatalf and Skipf end the goroutine they are called in.
func inGoroutine(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// fakeTB records Fatalf and Skipf instead of ending the real test. Like the
// real ones they end the calling goroutine, so call Start in its own
// goroutine. Everything else (TempDir, Cleanup, ...) goes to the real test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

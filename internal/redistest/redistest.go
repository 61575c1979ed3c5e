// Package redistest starts throwaway redis-server processes for tests.
//
// Every [Server] runs on its own free loopback port with its own temporary
// directory, so tests may use it in parallel and never touch a shared Redis
// (in particular not the one on port 6379). The process is killed when the
// test that started it ends, whether it passed or failed.
//
// [StartCluster] and [StartSentinel] start whole deployments the same way:
// a Redis Cluster of 3 masters and 3 replicas, and a primary with a replica
// and 3 sentinels.
//
// When redis-server is not on PATH, [Start] skips the test, unless the
// environment asks for real Redis (MQ_REQUIRE_REDIS=1 or CI=true), in which
// case the test fails.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// binary is the program Start runs, looked up on PATH.
	binary = "redis-server"
	// logName is the file, in the server's directory, that receives the
	// server's stdout and stderr across all its starts.
	logName = "redis-server.log"
	// readyTimeout bounds how long a start may take to answer PING.
	readyTimeout = 10 * time.Second
	// pollInterval is the pause between two PING attempts while starting.
	pollInterval = 10 * time.Millisecond
	// portAttempts is how many ports Start tries when redis fails to bind.
	portAttempts = 5
	// logTailBytes is how much of the log a failure message quotes.
	logTailBytes = 4096
	// maxPort is the highest port freePort returns: a cluster node's bus
	// port is its port plus 10000, and must stay below 65536.
	maxPort = 55535
)

// Server is one redis-server process started by [Start]. Each Server has its
// own port, directory and state; its methods may be called from any
// goroutine.
type Server struct {
	// Addr is the server's address, "127.0.0.1:PORT". It does not change
	// across [Server.Kill] and [Server.Restart].
	Addr string

	port int
	dir  string
	conf string   // config file given as the first argument, or ""
	args []string // extra arguments given to Start

	mu     sync.Mutex
	proc   *process // running process, or nil after Kill
	closed bool     // set by cleanup; Restart is refused afterwards
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd.Wait has returned
	err    error         // cmd.Wait's result, readable once done is closed
	paused bool          // stopped by Pause and not yet resumed; guarded by Server.mu
}

// Start runs a new redis-server for the test and returns once it answers
// PING. The server listens on 127.0.0.1 on a free port, keeps its files in a
// fresh tb.TempDir(), and runs without persistence (--save "" --appendonly
// no); args are appended to the command line, so they may override that,
// e.g. Start(tb, "--appendonly", "yes").
//
// The process is killed (SIGKILL) and reaped in a tb.Cleanup, so nothing
// outlives the test even when it fails. Its stdout and stderr go to a log
// file in the server's directory; start failures quote the log's tail.
//
// If redis-server is not on PATH or cannot be executed, Start skips the
// test, or fails it when MQ_REQUIRE_REDIS=1 or CI=true is set. A server that
// runs but does not come up fails the test.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return start(tb, "", args)
}

// start is Start with an optional config file, which redis-server must get
// as its first argument (Sentinel needs one, and rewrites it).
func start(tb testing.TB, conf string, args []string) *Server {
	tb.Helper()

	path, err := exec.LookPath(binary)
	if err != nil {
		unavailable(tb, fmt.Sprintf("%s not found on PATH: %v", binary, err))
	}

	// TempDir first: cleanups run last-in first-out, so the process is
	// killed before its directory is removed.
	s := &Server{dir: tb.TempDir(), conf: conf, args: append([]string(nil), args...)}
	tb.Cleanup(s.cleanup)

	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

		p, err := s.launch(path)
		var se startError
		switch {
		case errors.As(err, &se):
			unavailable(tb, fmt.Sprintf("cannot run %s: %v", path, se.err))
		case err == nil:
			s.mu.Lock()
			s.proc = p
			s.mu.Unlock()
			return s
		case errors.Is(err, errPortInUse):
			lastErr = err // somebody took the port since freePort; try another
			continue
		default:
			tb.Fatalf("redistest: %v", err)
		}
	}
	tb.Fatalf("redistest: no free port after %d attempts: %v", portAttempts, lastErr)
	return nil
}

// Client returns a go-redis client connected to the server. It is closed
// when the test ends, before the server is killed.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server at once with SIGKILL and waits for the process to
// exit, so that it no longer answers on Addr. Unsaved data is lost. The
// Server remembers its port, directory and arguments for [Server.Restart].
// Killing a server that is not running does nothing.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// Restart starts the server again on the same port, with the same directory
// and arguments, and returns once it answers PING. A server that is still
// running is killed first. Whatever the server persisted in its directory
// (with e.g. "--appendonly", "yes") is loaded again; by default nothing is.
// Restart fails the test if the port has been taken in the meantime or the
// server does not come up.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		tb.Fatalf("redistest: Restart of %s after its test ended", s.Addr)
	}
	s.kill()

	path, err := exec.LookPath(binary)
	if err != nil {
		tb.Fatalf("redistest: restarting %s: %s not found on PATH: %v", s.Addr, binary, err)
	}
	p, err := s.launch(path)
	if err != nil {
		tb.Fatalf("redistest: restarting %s: %v", s.Addr, err)
	}
	s.proc = p
}

// cleanup resumes a paused server, then kills it for good, at the end of
// the test.
func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.resume()
	s.kill()
}

// kill sends SIGKILL to the running process, if any, and waits for it to
// exit. s.mu must be held.
func (s *Server) kill() {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Kill() // fails only if the process already exited
	<-p.done
}

// unavailable skips the test because Redis cannot be run here, or fails it
// when the environment requires real Redis.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	const how = "install redis-server (e.g. apt-get install redis-server) " +
		"or run scripts/test.sh, which installs it"
	if requireRedis() {
		tb.Fatalf("redistest: %s; real Redis is required here (MQ_REQUIRE_REDIS=1 or CI=true): %s", why, how)
	}
	tb.Skipf("redistest: %s; skipping. To run this test against real Redis, %s "+
		"(set MQ_REQUIRE_REDIS=1 to make a missing Redis fail instead of skip)", why, how)
}

// requireRedis reports whether the environment forbids skipping.
func requireRedis() bool {
	for _, name := range []string{"MQ_REQUIRE_REDIS", "CI"} {
		if v, err := strconv.ParseBool(os.Getenv(name)); err == nil && v {
			return true
		}
	}
	return false
}

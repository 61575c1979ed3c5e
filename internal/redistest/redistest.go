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
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// errPortInUse reports that redis-server could not bind its port.
var errPortInUse = errors.New("port already in use")

// startError reports that the binary could not be executed at all.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }

// launch runs redis-server on s.port in s.dir and waits until it answers
// PING. On failure no process is left running.
func (s *Server) launch(path string) (*process, error) {
	logPath := filepath.Join(s.dir, logName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	// Remember where this run's output starts, to quote only that.
	var logStart int64
	if fi, err := logFile.Stat(); err == nil {
		logStart = fi.Size()
	}

	var argv []string
	if s.conf != "" {
		argv = append(argv, s.conf)
	}
	argv = append(argv,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
	)
	argv = append(argv, s.args...)
	cmd := exec.Command(path, argv...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)

	err = cmd.Start()
	_ = logFile.Close() // the child holds its own copy
	if err != nil {
		return nil, startError{err}
	}

	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := waitReady(s.Addr, p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		tail := logTail(logPath, logStart)
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %v", errPortInUse, err)
		}
		return nil, fmt.Errorf("%s %s on %s: %w\n--- %s (tail) ---\n%s",
			path, strings.Join(quoteArgs(argv), " "), s.Addr, err, logPath, tail)
	}
	return p, nil
}

// waitReady polls addr until the process p answers PING, p exits, or
// readyTimeout passes. A PONG from some other redis-server (one that holds
// the port, e.g. a server another test restarted there) is not taken for
// readiness: it fails with errPortInUse, since p cannot bind.
func waitReady(addr string, p *process) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited before answering PING: %v", p.err)
		default:
		}
		pid, err := pingPID(addr)
		switch {
		case err == nil && pid == p.cmd.Process.Pid:
			return nil
		case err == nil:
			return fmt.Errorf("%w: another redis-server (pid %d) answers on %s", errPortInUse, pid, addr)
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %v", readyTimeout, lastErr)
		}
		select {
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// pingPID sends PING and INFO server over a fresh connection, expects +PONG,
// and returns the process_id the server reports.
func pingPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return 0, fmt.Errorf("PING answered %q", line) // e.g. -LOADING
	}
	if line, err = r.ReadString('\n'); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "$"))
	if err != nil || !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO server answered %q", strings.TrimSpace(line))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(infoField(string(body), "process_id"))
	if err != nil {
		return 0, fmt.Errorf("INFO server has no process_id: %v", err)
	}
	return pid, nil
}

// freePort asks the kernel for a free loopback port. The port is released
// before returning, so another process may take it before redis-server
// binds; Start retries in that case.
//
// A port is handed out at most once per test binary: a test that kills its
// server keeps the port to restart on, and another test starting a server
// meanwhile must not take it. Ports above maxPort are skipped, because a
// cluster node also binds its port plus 10000.
func freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if port > maxPort {
			continue
		}
		handedOutMu.Lock()
		taken := handedOut[port]
		handedOut[port] = true
		handedOutMu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("no port that was not handed out already")
}

// handedOut holds the ports freePort has returned in this process.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// logTail returns the end of the log written since offset start.
func logTail(path string, start int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if start <= int64(len(b)) {
		b = b[start:]
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(b) == 0 {
		return "(log is empty)"
	}
	return string(b)
}

// quoteArgs quotes empty arguments so a logged command line reads as typed.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
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

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
	"syscall"
	"time"
)

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

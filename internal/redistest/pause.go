package redistest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// stateTimeout bounds how long Pause and Resume wait for the kernel to
// report the process stopped or running again.
const stateTimeout = 5 * time.Second

// Pause freezes the server with SIGSTOP, as a machine that stops
// scheduling it would: connections stay open and the kernel still accepts
// new ones and buffers what clients send, but nothing is read or answered
// until [Server.Resume]. The server's clock (TIME) keeps running, so locks
// and backoffs expire during the pause. Where /proc is available, Pause
// returns once the kernel reports the process stopped.
//
// Pausing a paused server does nothing; pausing a killed one fails the
// test. A server still paused when the test ends is resumed, then killed.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		tb.Fatalf("redistest: Pause of %s, which is not running", s.Addr)
	}
	if p.paused {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("redistest: pausing %s: %v", s.Addr, err)
	}
	p.paused = true
	if err := waitState(p, true); err != nil {
		tb.Fatalf("redistest: pausing %s: %v", s.Addr, err)
	}
}

// Resume lets a server frozen by [Server.Pause] run again with SIGCONT; it
// then answers what clients sent meanwhile. Resuming a server that is not
// paused does nothing.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.resume(); err != nil {
		tb.Fatalf("redistest: resuming %s: %v", s.Addr, err)
	}
}

// resume sends SIGCONT to a paused process. s.mu must be held.
func (s *Server) resume() error {
	p := s.proc
	if p == nil || !p.paused {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	p.paused = false
	return waitState(p, false)
}

// waitState waits until /proc says the process is stopped (or is not),
// or it exited. Without /proc it returns at once.
func waitState(p *process, stopped bool) error {
	deadline := time.Now().Add(stateTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.err)
		default:
		}
		state, ok := procState(p.cmd.Process.Pid)
		if !ok || (state == 'T') == stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process state still %q after %v", state, stateTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// procState reads the one-letter state of process pid from /proc (R, S,
// T for stopped, ...), and whether it could.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

package redistest

import (
	"errors"
	"net"
	"sync"
)

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

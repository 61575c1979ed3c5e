package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The bounds are for a loaded machine: beside a CPU-bound loop on two
// cores, under -race, a CLUSTER MEET outlasted 2 s and a Sentinel
// deployment 30 s; they only cost time when something is broken.
const (
	// deployTimeout bounds how long a cluster or Sentinel deployment may
	// take to come up, and a failover to complete.
	deployTimeout = 90 * time.Second
	// deployPoll is the pause between two checks while waiting for one.
	deployPoll = 20 * time.Millisecond
	// adminTimeout bounds one administrative command.
	adminTimeout = 10 * time.Second
)

// admin holds one plain client per node for administrative commands
// (CLUSTER, SENTINEL, ROLE, INFO), closed when the test ends, before the
// servers are killed.
type admin struct {
	clients map[string]*redis.Client
}

func newAdmin(tb testing.TB, addrs []string) *admin {
	a := &admin{clients: make(map[string]*redis.Client, len(addrs))}
	for _, addr := range addrs {
		a.clients[addr] = redis.NewClient(&redis.Options{
			Addr:         addr,
			DialTimeout:  adminTimeout,
			ReadTimeout:  adminTimeout,
			WriteTimeout: adminTimeout,
			MaxRetries:   -1, // the callers poll; a retry would only hide state
			PoolSize:     2,
			Protocol:     2, // plain RESP2 replies, parsed below
		})
	}
	tb.Cleanup(func() {
		for _, c := range a.clients {
			_ = c.Close()
		}
	})
	return a
}

// do runs one command on the node at addr with a short deadline.
func (a *admin) do(addr string, args ...any) *redis.Cmd {
	c, ok := a.clients[addr]
	if !ok {
		cmd := redis.NewCmd(context.Background(), args...)
		cmd.SetErr(fmt.Errorf("redistest: %s is not a node of this deployment", addr))
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	return c.Do(ctx, args...)
}

// text runs a command whose answer is one bulk string (INFO, CLUSTER INFO,
// CLUSTER NODES).
func (a *admin) text(addr string, args ...any) (string, error) {
	return a.do(addr, args...).Text()
}

// infoField returns the value of "name:value" in an INFO-style text.
func infoField(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// role answers the node's ROLE: "master", "slave" or "sentinel", and for a
// replica its master's address and link state ("connected" when in sync).
func (a *admin) role(addr string) (role, master, state string, err error) {
	reply, err := a.do(addr, "role").Slice()
	if err != nil {
		return "", "", "", err
	}
	if len(reply) == 0 {
		return "", "", "", fmt.Errorf("ROLE answered nothing")
	}
	role, _ = reply[0].(string)
	if role == "slave" && len(reply) >= 4 {
		host, _ := reply[1].(string)
		port, _ := reply[2].(int64)
		state, _ = reply[3].(string)
		master = fmt.Sprintf("%s:%d", host, port)
	}
	return role, master, state, nil
}

// waitUntil calls check until it answers nil, failing the test with what
// and check's last error after deployTimeout.
func waitUntil(tb testing.TB, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(deployTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: timed out after %v waiting for %s: %v", deployTimeout, what, err)
		}
		time.Sleep(deployPoll)
	}
}

// requireBinary skips or fails the test, as Start does, when redis-server
// is missing, before anything is started.
func requireBinary(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath(binary); err != nil {
		unavailable(tb, fmt.Sprintf("%s not found on PATH: %v", binary, err))
	}
}

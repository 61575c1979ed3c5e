package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

const (
	// sentinelMasterName is the name the sentinels monitor the primary by.
	sentinelMasterName = "mymaster"
	// sentinelCount is how many sentinels StartSentinel runs; the quorum
	// is a majority of them.
	sentinelCount  = 3
	sentinelQuorum = 2
)

// Sentinel is a Redis primary with one replica, monitored by three
// sentinels, started by [StartSentinel]: five redis-server processes on
// free loopback ports. Every process is killed when the test that started
// it ends.
type Sentinel struct {
	// MasterName is the name the sentinels know the primary by.
	MasterName string
	// SentinelAddrs holds the sentinels' addresses.
	SentinelAddrs []string
	// Sentinels holds the sentinel processes, in the order of
	// SentinelAddrs.
	Sentinels []*Server
	// Nodes holds the data processes: the one started as primary, then the
	// one started as its replica. Roles change with [Sentinel.Failover];
	// [Sentinel.MasterAddr] tells the current primary.
	Nodes []*Server

	adm *admin
}

// StartSentinel starts a primary, a replica of it (--replicaof) and three
// sentinels (redis-server <conf> --sentinel, each with its own writable
// config file) that monitor the primary as "mymaster" with quorum 2,
// down-after-milliseconds 1000 and failover-timeout 5000. It returns once
// the replica is in sync and every sentinel sees the primary up, the
// replica, and the two other sentinels.
//
// Every process is killed (SIGKILL) and reaped when the test ends, also
// when StartSentinel itself fails midway. Like [Start], StartSentinel skips
// the test when redis-server is missing, or fails it when
// MQ_REQUIRE_REDIS=1 or CI=true is set.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	requireBinary(tb)
	s := &Sentinel{MasterName: sentinelMasterName}
	primary := Start(tb, "--repl-diskless-sync-delay", "0")
	host, port := splitAddr(primary.Addr)
	replica := Start(tb, "--replicaof", host, strconv.Itoa(port), "--repl-diskless-sync-delay", "0")
	s.Nodes = []*Server{primary, replica}

	conf := fmt.Sprintf("sentinel monitor %s %s %d %d\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n",
		sentinelMasterName, host, port, sentinelQuorum)
	for i := range sentinelCount {
		// Sentinel rewrites its config file, so each gets its own copy
		// in a directory it may write.
		path := filepath.Join(tb.TempDir(), fmt.Sprintf("sentinel-%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			tb.Fatalf("redistest: writing %s: %v", path, err)
		}
		sn := start(tb, path, []string{"--sentinel"})
		s.Sentinels = append(s.Sentinels, sn)
		s.SentinelAddrs = append(s.SentinelAddrs, sn.Addr)
	}
	s.adm = newAdmin(tb, append([]string{primary.Addr, replica.Addr}, s.SentinelAddrs...))

	waitUntil(tb, "the Sentinel deployment to be ready", func() error {
		return s.healthy(primary.Addr, replica.Addr)
	})
	return s
}

// Client returns a go-redis failover client (redis.NewFailoverClient) that
// finds the primary through the sentinels and follows failovers. It is
// closed when the test ends, before the servers are killed.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName,
		SentinelAddrs: s.SentinelAddrs,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr returns the primary's address as the first sentinel that
// answers reports it.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	var lastErr error
	for _, addr := range s.SentinelAddrs {
		m, err := s.masterAddr(addr)
		if err == nil {
			return m
		}
		lastErr = err
	}
	tb.Fatalf("redistest: no sentinel reports the primary: %v", lastErr)
	return ""
}

// Failover asks the first sentinel to fail over (SENTINEL FAILOVER
// mymaster): it promotes the replica without waiting for the primary to
// stop writes, so writes the replica had not received yet are lost. It
// returns, answering the new primary's address, once every sentinel
// reports the former replica as primary, that node reports role master,
// the former primary has been turned into its replica and is in sync, and
// the sentinels see it so. Sentinel turns a former primary that is still
// up into a replica only about 10 s after the switch (it first waits 8 s
// for newer configurations), so Failover takes that long; until then the
// former primary still accepts writes from clients that have not switched.
func (s *Sentinel) Failover(tb testing.TB) string {
	tb.Helper()
	oldPrimary := s.MasterAddr(tb)
	var newPrimary string
	for _, n := range s.Nodes {
		if n.Addr != oldPrimary {
			newPrimary = n.Addr
		}
	}
	if newPrimary == "" {
		tb.Fatalf("redistest: the sentinels report %s as primary, which is not one of the nodes", oldPrimary)
	}

	asked := false
	waitUntil(tb, fmt.Sprintf("the sentinels to fail over from %s to %s", oldPrimary, newPrimary), func() error {
		if !asked {
			err := s.adm.do(s.SentinelAddrs[0], "sentinel", "failover", s.MasterName).Err()
			if err != nil && !strings.HasPrefix(err.Error(), "INPROG") {
				return fmt.Errorf("SENTINEL FAILOVER on %s: %w", s.SentinelAddrs[0], err) // e.g. NOGOODSLAVE: ask again
			}
			asked = true
		}
		return s.healthy(newPrimary, oldPrimary)
	})
	return newPrimary
}

// healthy checks that primary and replica hold those roles and are in
// sync, and that every sentinel reports primary as the master, up and not
// failing over, with replica as its one replica and the two other
// sentinels known.
func (s *Sentinel) healthy(primary, replica string) error {
	role, _, _, err := s.adm.role(primary)
	if err != nil {
		return fmt.Errorf("ROLE on %s: %w", primary, err)
	}
	if role != "master" {
		return fmt.Errorf("%s reports role %s", primary, role)
	}
	role, master, state, err := s.adm.role(replica)
	if err != nil {
		return fmt.Errorf("ROLE on %s: %w", replica, err)
	}
	if role != "slave" || master != primary || state != "connected" {
		return fmt.Errorf("%s reports role %s of %s, link %s", replica, role, master, state)
	}
	for _, addr := range s.SentinelAddrs {
		m, err := s.masterAddr(addr)
		if err != nil {
			return err
		}
		if m != primary {
			return fmt.Errorf("sentinel %s reports %s as primary", addr, m)
		}
		info, err := s.fields(addr, "sentinel", "master", s.MasterName)
		if err != nil {
			return fmt.Errorf("SENTINEL MASTER on %s: %w", addr, err)
		}
		if info["flags"] != "master" || info["num-slaves"] != "1" || info["num-other-sentinels"] != strconv.Itoa(sentinelCount-1) {
			return fmt.Errorf("sentinel %s sees the primary with flags %s, %s replicas, %s other sentinels",
				addr, info["flags"], info["num-slaves"], info["num-other-sentinels"])
		}
		reps, err := s.adm.do(addr, "sentinel", "replicas", s.MasterName).Slice()
		if err != nil {
			return fmt.Errorf("SENTINEL REPLICAS on %s: %w", addr, err)
		}
		if len(reps) != 1 {
			return fmt.Errorf("sentinel %s sees %d replicas", addr, len(reps))
		}
		// Not the sentinel's master-link-status: it refreshes that only
		// every 10 s; the replica's ROLE above is the truth.
		r := pairs(reps[0])
		if got := r["ip"] + ":" + r["port"]; got != replica || r["flags"] != "slave" {
			return fmt.Errorf("sentinel %s sees replica %s with flags %s", addr, got, r["flags"])
		}
	}
	return nil
}

// masterAddr asks one sentinel for the primary's address.
func (s *Sentinel) masterAddr(sentinel string) (string, error) {
	a, err := s.adm.do(sentinel, "sentinel", "get-master-addr-by-name", s.MasterName).StringSlice()
	if err != nil {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", sentinel, err)
	}
	if len(a) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s answered %v", sentinel, a)
	}
	return a[0] + ":" + a[1], nil
}

// fields runs a command answering a flat list of names and values.
func (s *Sentinel) fields(addr string, args ...any) (map[string]string, error) {
	reply, err := s.adm.do(addr, args...).Result()
	if err != nil {
		return nil, err
	}
	return pairs(reply), nil
}

// pairs reads a RESP2 flat list of names and values.
func pairs(v any) map[string]string {
	out := map[string]string{}
	a, _ := v.([]any)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		out[k] = val
	}
	return out
}

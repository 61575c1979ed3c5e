package redistest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shape of the clusters StartCluster builds.
const (
	clusterMasters  = 3
	clusterReplicas = 1 // per master
	clusterSlots    = 16384
	// clusterNodeTimeout is --cluster-node-timeout, in ms: short, so that a
	// failover the test causes completes quickly.
	clusterNodeTimeout = 2000
	// manualFailoverRetry is how long Failover waits for a CLUSTER FAILOVER
	// to take effect before asking again (Redis gives up on a manual
	// failover after 5 s).
	manualFailoverRetry = 6 * time.Second
)

// Cluster is a Redis Cluster of 3 masters with one replica each, started by
// [StartCluster]: six redis-server processes on free loopback ports. Every
// process is killed when the test that started it ends.
type Cluster struct {
	// Addrs holds every node's address: the three first masters, then their
	// replicas in the same order. Roles change with [Cluster.Failover];
	// [Cluster.Masters] tells the current ones.
	Addrs []string
	// Servers holds the node processes, in the order of Addrs, e.g. to
	// Kill one.
	Servers []*Server

	adm *admin
	ids map[string]string // addr -> node id
}

// ClusterMaster is one master of a [Cluster] as the cluster sees it.
type ClusterMaster struct {
	// Addr is the master's address, "127.0.0.1:PORT".
	Addr string
	// ID is its cluster node id.
	ID string
	// Replicas holds the addresses of its replicas.
	Replicas []string
	// Slots holds the slot ranges it serves, each [first, last].
	Slots [][2]int
}

// Owns tells whether the master serves slot.
func (m ClusterMaster) Owns(slot int) bool {
	for _, r := range m.Slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

// StartCluster starts six redis-server processes with cluster mode on
// (--cluster-enabled yes, a nodes.conf in each server's directory,
// --cluster-node-timeout 2000, no persistence), makes them a cluster of 3
// masters, each serving a third of the slots, with one replica each, and
// returns once every node reports cluster_state:ok, every node sees the
// same masters, slots and replicas, and every replica is in sync with its
// master.
//
// The cluster is built with CLUSTER ADDSLOTSRANGE, MEET and REPLICATE, the
// commands redis-cli --cluster create sends, so redis-cli is not needed.
//
// Every process is killed (SIGKILL) and reaped when the test ends, also
// when StartCluster itself fails midway. Like [Start], StartCluster skips
// the test when redis-server is missing, or fails it when
// MQ_REQUIRE_REDIS=1 or CI=true is set.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	requireBinary(tb)
	c := &Cluster{ids: map[string]string{}}
	for range clusterMasters * (1 + clusterReplicas) {
		s := Start(tb,
			"--cluster-enabled", "yes",
			// Relative to the server's directory: its own file, kept
			// across Restart so that the node rejoins as itself.
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
			// Replicas sync at once instead of after the default 5 s.
			"--repl-diskless-sync-delay", "0",
		)
		c.Servers = append(c.Servers, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	c.adm = newAdmin(tb, c.Addrs)

	for i, addr := range c.Addrs {
		id, err := c.adm.text(addr, "cluster", "myid")
		if err != nil {
			tb.Fatalf("redistest: CLUSTER MYID on %s: %v", addr, err)
		}
		c.ids[addr] = id
		// Distinct epochs up front, as redis-cli does, so that the nodes
		// need not resolve collisions before the cluster is usable.
		if err := c.adm.do(addr, "cluster", "set-config-epoch", i+1).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER SET-CONFIG-EPOCH on %s: %v", addr, err)
		}
	}
	for m := range clusterMasters {
		first, last := m*clusterSlots/clusterMasters, (m+1)*clusterSlots/clusterMasters-1
		if err := c.adm.do(c.Addrs[m], "cluster", "addslotsrange", first, last).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", first, last, c.Addrs[m], err)
		}
	}
	host, port := splitAddr(c.Addrs[0])
	for _, addr := range c.Addrs[1:] {
		if err := c.adm.do(addr, "cluster", "meet", host, port).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER MEET on %s: %v", addr, err)
		}
	}
	waitUntil(tb, "the cluster nodes to meet", func() error {
		for _, addr := range c.Addrs {
			nodes, err := c.nodes(addr)
			if err != nil {
				return err
			}
			for _, id := range c.ids {
				n, ok := findNode(nodes, id)
				if !ok {
					return fmt.Errorf("%s does not know node %s yet", addr, id)
				}
				if n.has("handshake") || n.has("noaddr") {
					return fmt.Errorf("%s sees node %s as %v", addr, id, n.flags)
				}
			}
		}
		return nil
	})
	for r := clusterMasters; r < len(c.Addrs); r++ {
		master := c.ids[c.Addrs[(r-clusterMasters)%clusterMasters]]
		waitUntil(tb, "CLUSTER REPLICATE on "+c.Addrs[r], func() error {
			return c.adm.do(c.Addrs[r], "cluster", "replicate", master).Err()
		})
	}
	waitUntil(tb, "the cluster to be ready", func() error {
		_, err := c.healthy()
		return err
	})
	return c
}

// Client returns a go-redis cluster client that knows every node. It is
// closed when the test ends, before the nodes are killed.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Server returns the node process at addr, or nil.
func (c *Cluster) Server(addr string) *Server {
	for _, s := range c.Servers {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Masters returns the cluster's masters, ordered by their first slot, with
// their replicas, as the first node that answers sees them. After
// StartCluster and Failover every node sees the same.
func (c *Cluster) Masters(tb testing.TB) []ClusterMaster {
	tb.Helper()
	var lastErr error
	for _, addr := range c.Addrs {
		nodes, err := c.nodes(addr)
		if err != nil {
			lastErr = err
			continue
		}
		return mastersOf(nodes)
	}
	tb.Fatalf("redistest: no cluster node answers CLUSTER NODES: %v", lastErr)
	return nil
}

// Slot returns the cluster slot of key (CLUSTER KEYSLOT).
func (c *Cluster) Slot(tb testing.TB, key string) int {
	tb.Helper()
	var lastErr error
	for _, addr := range c.Addrs {
		slot, err := c.adm.do(addr, "cluster", "keyslot", key).Int()
		if err == nil {
			return slot
		}
		lastErr = err
	}
	tb.Fatalf("redistest: no cluster node answers CLUSTER KEYSLOT: %v", lastErr)
	return 0
}

// MasterFor returns the master that serves key's slot.
func (c *Cluster) MasterFor(tb testing.TB, key string) ClusterMaster {
	tb.Helper()
	slot := c.Slot(tb, key)
	for _, m := range c.Masters(tb) {
		if m.Owns(slot) {
			return m
		}
	}
	tb.Fatalf("redistest: no master serves slot %d (key %q)", slot, key)
	return ClusterMaster{}
}

// Failover makes a replica of the master at addr take over its slots with
// a graceful CLUSTER FAILOVER (the master stops writes until the replica
// has caught up, so no acknowledged write is lost), and returns once the
// replica reports role master, the old master has become its replica and
// is in sync, and every node reports cluster_state:ok and sees the same
// masters, slots and replicas. It answers the new master's address.
func (c *Cluster) Failover(tb testing.TB, master string) string {
	tb.Helper()
	nodes, err := c.nodes(master)
	if err != nil {
		tb.Fatalf("redistest: CLUSTER NODES on %s: %v", master, err)
	}
	var m ClusterMaster
	for _, x := range mastersOf(nodes) {
		if x.Addr == master {
			m = x
		}
	}
	if m.Addr == "" || len(m.Replicas) == 0 {
		tb.Fatalf("redistest: %s is not a master with a replica: %+v", master, mastersOf(nodes))
	}
	replica := m.Replicas[0]

	var asked time.Time
	ask := func() error {
		asked = time.Now()
		return c.adm.do(replica, "cluster", "failover").Err()
	}
	if err := ask(); err != nil {
		tb.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", replica, err)
	}
	waitUntil(tb, fmt.Sprintf("%s to take over from %s", replica, master), func() error {
		role, _, _, err := c.adm.role(replica)
		if err != nil {
			return err
		}
		if role != "master" {
			if time.Since(asked) > manualFailoverRetry {
				// Redis abandoned the manual failover; ask again.
				if err := ask(); err != nil {
					return fmt.Errorf("CLUSTER FAILOVER on %s: %w", replica, err)
				}
			}
			return fmt.Errorf("%s still has role %s", replica, role)
		}
		masters, err := c.healthy()
		if err != nil {
			return err
		}
		for _, x := range masters {
			if x.Addr == replica && slices.Equal(x.Slots, m.Slots) && slices.Contains(x.Replicas, master) {
				return nil
			}
		}
		return fmt.Errorf("the cluster does not see %s as master of %v with replica %s yet: %+v", replica, m.Slots, master, masters)
	})
	return replica
}

// splitAddr splits "host:port".
func splitAddr(addr string) (string, int) {
	i := strings.LastIndexByte(addr, ':')
	port, _ := strconv.Atoi(addr[i+1:])
	return addr[:i], port
}

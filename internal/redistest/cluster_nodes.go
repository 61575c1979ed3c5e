package redistest

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// healthy checks that every node reports cluster_state:ok, that all nodes
// see the same masters, slots and replicas, with every slot served, no node
// failing, every master with its replica, and every replica in sync. It
// answers the masters.
func (c *Cluster) healthy() ([]ClusterMaster, error) {
	var want []ClusterMaster
	for _, addr := range c.Addrs {
		info, err := c.adm.text(addr, "cluster", "info")
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %w", addr, err)
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return nil, fmt.Errorf("%s reports cluster_state:%s", addr, st)
		}
		nodes, err := c.nodes(addr)
		if err != nil {
			return nil, err
		}
		if len(nodes) != len(c.Addrs) {
			return nil, fmt.Errorf("%s knows %d nodes, not %d", addr, len(nodes), len(c.Addrs))
		}
		for _, n := range nodes {
			if n.has("fail") || n.has("fail?") || n.has("handshake") || n.has("noaddr") {
				return nil, fmt.Errorf("%s sees %s as %v", addr, n.addr, n.flags)
			}
		}
		masters := mastersOf(nodes)
		if err := checkCoverage(masters); err != nil {
			return nil, fmt.Errorf("as %s sees it: %w", addr, err)
		}
		if want == nil {
			want = masters
		} else if !equalMasters(want, masters) {
			return nil, fmt.Errorf("nodes disagree: %s sees %+v, %s sees %+v", c.Addrs[0], want, addr, masters)
		}
	}
	for _, m := range want {
		if len(m.Replicas) != clusterReplicas {
			return nil, fmt.Errorf("master %s has replicas %v", m.Addr, m.Replicas)
		}
		for _, r := range m.Replicas {
			role, master, state, err := c.adm.role(r)
			if err != nil {
				return nil, fmt.Errorf("ROLE on %s: %w", r, err)
			}
			if role != "slave" || master != m.Addr || state != "connected" {
				return nil, fmt.Errorf("replica %s reports role %s of %s, link %s", r, role, master, state)
			}
		}
	}
	return want, nil
}

// checkCoverage checks that masters serve every slot exactly once.
func checkCoverage(masters []ClusterMaster) error {
	var ranges [][2]int
	for _, m := range masters {
		ranges = append(ranges, m.Slots...)
	}
	slices.SortFunc(ranges, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	next := 0
	for _, r := range ranges {
		if r[0] != next {
			return fmt.Errorf("slots %d to %d are not served as one expects (ranges %v)", next, r[0]-1, ranges)
		}
		next = r[1] + 1
	}
	if next != clusterSlots {
		return fmt.Errorf("slots %d to %d are not served", next, clusterSlots-1)
	}
	return nil
}

func equalMasters(a, b []ClusterMaster) bool {
	return slices.EqualFunc(a, b, func(x, y ClusterMaster) bool {
		return x.Addr == y.Addr && x.ID == y.ID && slices.Equal(x.Replicas, y.Replicas) && slices.Equal(x.Slots, y.Slots)
	})
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id     string
	addr   string // "ip:port"
	flags  []string
	master string // the master's id for a replica, "-" for a master
	slots  [][2]int
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }

// nodes runs CLUSTER NODES on addr.
func (c *Cluster) nodes(addr string) ([]clusterNode, error) {
	text, err := c.adm.text(addr, "cluster", "nodes")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", addr, err)
	}
	return parseClusterNodes(text)
}

// parseClusterNodes parses CLUSTER NODES:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
// <config-epoch> <link-state> <slot>...
func parseClusterNodes(text string) ([]clusterNode, error) {
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated
			}
			lo, hi, isRange := strings.Cut(s, "-")
			first, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER NODES slot %q: %w", s, err)
			}
			last := first
			if isRange {
				if last, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("CLUSTER NODES slot %q: %w", s, err)
				}
			}
			n.slots = append(n.slots, [2]int{first, last})
		}
		out = append(out, n)
	}
	return out, nil
}

func findNode(nodes []clusterNode, id string) (clusterNode, bool) {
	for _, n := range nodes {
		if n.id == id {
			return n, true
		}
	}
	return clusterNode{}, false
}

// mastersOf answers the masters that serve slots, by first slot, with
// their replicas sorted.
func mastersOf(nodes []clusterNode) []ClusterMaster {
	var out []ClusterMaster
	for _, n := range nodes {
		if !n.has("master") || len(n.slots) == 0 {
			continue
		}
		m := ClusterMaster{Addr: n.addr, ID: n.id, Slots: slices.Clone(n.slots)}
		slices.SortFunc(m.Slots, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
		for _, r := range nodes {
			if r.master == n.id && r.has("slave") {
				m.Replicas = append(m.Replicas, r.addr)
			}
		}
		slices.Sort(m.Replicas)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b ClusterMaster) int { return cmp.Compare(a.Slots[0][0], b.Slots[0][0]) })
	return out
}

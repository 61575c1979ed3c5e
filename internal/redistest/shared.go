package redistest

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Shared deployments: a Redis Cluster takes seconds to start and six
// processes to run, so a test binary that needs one in many tests leases
// one from a pool instead of starting its own each time. A lease is
// exclusive: the test has the deployment to itself, as if it had started
// it, so tests need not isolate their keys from each other. When the test
// ends the deployment is checked (still healthy, roles as before) and reset
// (every key and the script cache flushed, on masters and replicas alike)
// before the next test gets it; one that fails the check is killed instead.
// The pool grows to as many deployments as tests use at the same time,
// typically -parallel of them, and is stopped by [StopShared], which a
// TestMain calls (see [WithShared]); a binary that dies without it takes
// its processes with it (see setParentDeathSignal).
//
// A test that kills, pauses, restarts, fails over or reconfigures a node
// must start a deployment of its own with [StartCluster] or
// [StartSentinel].

// owner stands in for the test that started a shared deployment: it keeps
// the deployment's cleanups and directories for [StopShared] instead of
// running them when that test ends. Failures and skips while starting go to
// the test, which is the only use of it after the start returns.
type owner struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

func (o *owner) Helper() {}

func (o *owner) Cleanup(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cleanups = append(o.cleanups, f)
}

func (o *owner) TempDir() string {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		o.TB.Fatalf("redistest: %v", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dirs = append(o.dirs, dir)
	return dir
}

// stop runs the cleanups, last first, as testing does, and removes the
// directories.
func (o *owner) stop() {
	o.mu.Lock()
	cleanups, dirs := o.cleanups, o.dirs
	o.cleanups, o.dirs = nil, nil
	o.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// pool holds shared deployments of one kind.
type pool[D any] struct {
	mu     sync.Mutex
	free   []*pooled[D]
	all    []*pooled[D]
	closed bool
}

type pooled[D any] struct {
	d     D
	owner *owner
	// state is what reset checks the deployment against when a lease
	// ends, e.g. the masters.
	state string
}

// lease answers a free deployment, or starts one with start when none is
// free, and gives it back when tb ends: reset checks it against its state
// at the start of the lease and cleans it, and a deployment that cannot be
// reset is stopped instead of given back.
func (p *pool[D]) lease(tb testing.TB, start func(testing.TB) D, state func(D) (string, error), reset func(d D, state string) error) D {
	tb.Helper()
	requireBinary(tb)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		tb.Fatalf("redistest: shared deployment leased after StopShared")
	}
	var pd *pooled[D]
	if n := len(p.free); n > 0 {
		pd, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()

	if pd == nil {
		o := &owner{TB: tb}
		ok := false
		defer func() {
			if !ok { // start failed the test (Goexit): kill what it started
				o.stop()
			}
		}()
		pd = &pooled[D]{d: start(o), owner: o}
		o.TB = nil // the starting test may end before the deployment does
		ok = true
		p.mu.Lock()
		p.all = append(p.all, pd)
		p.mu.Unlock()
	}
	st, err := state(pd.d)
	if err != nil {
		p.discard(pd)
		tb.Fatalf("redistest: shared deployment: %v", err)
	}
	pd.state = st
	tb.Cleanup(func() { p.giveBack(tb, pd, reset) })
	return pd.d
}

func (p *pool[D]) giveBack(tb testing.TB, pd *pooled[D], reset func(d D, state string) error) {
	if err := reset(pd.d, pd.state); err != nil {
		p.discard(pd)
		tb.Errorf("redistest: shared deployment left unusable by the test (shared ones must not be killed, failed over or reconfigured): %v", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		pd.owner.stop()
		return
	}
	p.free = append(p.free, pd)
}

// discard stops pd and forgets it.
func (p *pool[D]) discard(pd *pooled[D]) {
	p.mu.Lock()
	for i, x := range p.all {
		if x == pd {
			p.all = append(p.all[:i], p.all[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	pd.owner.stop()
}

// stop stops every deployment that is not leased; leased ones stop when
// their lease ends.
func (p *pool[D]) stop() {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	p.all = nil
	p.mu.Unlock()
	for _, pd := range free {
		pd.owner.stop()
	}
}

var (
	sharedClusters  pool[*Cluster]
	sharedSentinels pool[*Sentinel]
)

// SharedCluster leases a cluster like the one [StartCluster] starts, from
// a pool shared by the tests of the binary, for the rest of tb: the test
// has it to itself, empty and with an empty script cache, as a fresh one.
// The test must not kill, pause, restart, fail over or reconfigure its
// nodes (use StartCluster for that); when it ends the cluster is checked
// for it (the test fails if the masters, slots or replicas changed or a
// node is unhealthy), flushed and given back. The binary's TestMain must
// call [StopShared] after the tests, see [WithShared].
func SharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	return sharedClusters.lease(tb, StartCluster, clusterState, (*Cluster).reset)
}

// SharedSentinel is to [StartSentinel] what [SharedCluster] is to
// [StartCluster]: a primary, its replica and three sentinels leased for
// the rest of tb, empty, to be neither killed nor failed over.
func SharedSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	return sharedSentinels.lease(tb, StartSentinel, sentinelState, (*Sentinel).reset)
}

// StopShared stops the shared deployments of [SharedCluster] and
// [SharedSentinel]; one still leased stops when its lease ends. Call it
// from TestMain once the tests have run, so that their processes and
// admin connections are gone before goleak or the binary's exit.
func StopShared() {
	sharedClusters.stop()
	sharedSentinels.stop()
}

// TestingM is what TestMain gets, and goleak.VerifyTestMain takes.
type TestingM interface{ Run() int }

type withShared struct{ m TestingM }

func (w withShared) Run() int {
	defer StopShared()
	return w.m.Run()
}

// WithShared wraps m so that Run stops the shared deployments once the
// tests have run, e.g.
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.WithShared(m)) }
//
// or os.Exit(redistest.WithShared(m).Run()).
func WithShared(m TestingM) TestingM { return withShared{m} }

// clusterState describes the cluster's layout (masters, their slots and
// replicas) once it is healthy.
func clusterState(c *Cluster) (string, error) {
	var masters []ClusterMaster
	err := poll("the shared cluster to be healthy", func() (err error) {
		masters, err = c.healthy()
		return err
	})
	return fmt.Sprintf("%+v", masters), err
}

// reset checks that the cluster is healthy with the layout of the lease's
// start, then flushes every master's keys and every node's script cache and
// waits for the replicas to have followed.
func (c *Cluster) reset(want string) error {
	got, err := clusterState(c)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the cluster's masters were %s and are %s", want, got)
	}
	masters, err := c.healthy()
	if err != nil {
		return err
	}
	for _, m := range masters {
		if err := c.adm.do(m.Addr, "flushall").Err(); err != nil {
			return fmt.Errorf("FLUSHALL on %s: %w", m.Addr, err)
		}
	}
	for _, addr := range c.Addrs {
		if err := c.adm.do(addr, "script", "flush").Err(); err != nil {
			return fmt.Errorf("SCRIPT FLUSH on %s: %w", addr, err)
		}
	}
	for _, addr := range c.Addrs {
		if err := poll("the flush to reach "+addr, func() error { return empty(c.adm, addr) }); err != nil {
			return err
		}
	}
	return nil
}

// sentinelState names the primary once the deployment is healthy.
func sentinelState(s *Sentinel) (string, error) {
	var primary string
	err := poll("the shared Sentinel deployment to be healthy", func() error {
		m, err := s.masterAddr(s.SentinelAddrs[0])
		if err != nil {
			return err
		}
		var replica string
		for _, n := range s.Nodes {
			if n.Addr != m {
				replica = n.Addr
			}
		}
		if err := s.healthy(m, replica); err != nil {
			return err
		}
		primary = m
		return nil
	})
	return primary, err
}

// reset checks that the deployment is healthy with the primary of the
// lease's start, then flushes its keys and the script caches and waits for
// the replica to have followed.
func (s *Sentinel) reset(want string) error {
	got, err := sentinelState(s)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the primary was %s and is %s", want, got)
	}
	if err := s.adm.do(got, "flushall").Err(); err != nil {
		return fmt.Errorf("FLUSHALL on %s: %w", got, err)
	}
	for _, n := range s.Nodes {
		if err := s.adm.do(n.Addr, "script", "flush").Err(); err != nil {
			return fmt.Errorf("SCRIPT FLUSH on %s: %w", n.Addr, err)
		}
	}
	for _, n := range s.Nodes {
		if err := poll("the flush to reach "+n.Addr, func() error { return empty(s.adm, n.Addr) }); err != nil {
			return err
		}
	}
	return nil
}

// empty checks that the node at addr holds no key.
func empty(a *admin, addr string) error {
	n, err := a.do(addr, "dbsize").Int64()
	if err != nil {
		return fmt.Errorf("DBSIZE on %s: %w", addr, err)
	}
	if n != 0 {
		return fmt.Errorf("%s still holds %d keys", addr, n)
	}
	return nil
}

// poll is waitUntil for where there is no test to fail: it answers check's
// last error after deployTimeout.
func poll(what string, check func() error) error {
	deadline := time.Now().Add(deployTimeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s: %w", deployTimeout, what, err)
		}
		time.Sleep(deployPoll)
	}
}

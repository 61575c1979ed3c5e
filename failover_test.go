package mq

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/require"
)

// The tests in this file fail over the real deployments of cluster_test.go
// (a Redis Cluster, and a primary watched by sentinels) while a worker and
// a producer use them, and measure what the failover cost.

// TestClusterFailover fails over the master of a queue's slot with a
// graceful CLUSTER FAILOVER while a worker handles the queue and a producer
// enqueues to it. A graceful failover loses no acknowledged write.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	// The worker and the producer each have their own Redis client, as
	// they would in different processes: each learns of the failover on
	// its own.
	worker := newClusterClient(t, rc.Client(t))
	producer := newClusterClient(t, rc.Client(t))
	const q = "failover"
	master := rc.MasterFor(t, keys.Key(q, true, keys.Messages))
	r := runFailover(t, worker, producer, q, func() string { return rc.Failover(t, master.Addr) })
	require.Zero(t, r.lost, "a graceful CLUSTER FAILOVER must lose no acknowledged message")
}

// TestSentinelFailover does the same on a Sentinel deployment with SENTINEL
// FAILOVER, which is not graceful: writes the replica had not received when
// it was promoted, and writes to the old primary before clients switch, are
// lost. The count is reported, not required to be zero.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	rs := redistest.StartSentinel(t)
	rdb := rs.Client(t)
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)

	// The protocol works unchanged through a failover client.
	ctx := clusterCtx(t, 10*time.Second)
	res, err := c.Enqueue(ctx, "sentinel-smoke", "x", &EnqueueOptions{MessageID: "a"})
	require.NoError(t, err)
	require.Equal(t, ActionAdded, res.Action)
	st, err := c.Inspector().MessageStatus(ctx, "sentinel-smoke", "a")
	require.NoError(t, err)
	require.Equal(t, StatusQueued, st)
	_, err = c.Inspector().ClearQueues(ctx, "sentinel-smoke")
	require.NoError(t, err)

	producer, err := New(rs.Client(t), &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	runFailover(t, c, producer, "failover", func() string { return rs.Failover(t) })
}

// failoverResult is what runFailover measured.
type failoverResult struct {
	lost int // acknowledged enqueues gone without being handled
}

// runFailover enqueues 500 messages, starts a worker on c, runs failover
// once 150 are handled, while a producer keeps enqueueing with its own
// client until shortly after.
// It requires that every message enqueued before the failover, and every
// acknowledged enqueue that was not lost, is handled; that the worker
// resumes; and reports the costs of the failover.
func runFailover(t *testing.T, c, producer *Client, q string, failover func() string) failoverResult {
	t.Helper()
	const (
		pre         = 500
		failAt      = 150
		handlerTime = 4 * time.Millisecond
	)
	ctx := clusterCtx(t, 120*time.Second)

	reqs := make([]EnqueueRequest, pre)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("pre-%03d", i)}}
	}
	results, err := c.EnqueueMany(ctx, q, reqs...)
	require.NoError(t, err)
	for _, r := range results {
		require.Equal(t, ActionAdded, r.Action)
	}

	var (
		mu      sync.Mutex
		handled = map[string]int{}
		starts  []time.Time // handler starts, in order
	)
	handledCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	lastStart := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return starts[len(starts)-1]
	}
	w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
		HandlerThreads: 4,
		WorkerThreads:  2,
		// Short, so that a message whose lock or outcome the failover
		// swallowed is handed out again within the test.
		LockTime: 3 * time.Second,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			mu.Lock()
			handled[m.ID]++
			starts = append(starts, time.Now())
			mu.Unlock()
			time.Sleep(handlerTime)
			return nil
		}),
	})
	require.NoError(t, err)
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(stopCtx)
	}()

	// The producer: one enqueue every 5 ms, each acknowledged one noted.
	var (
		acked     []string
		ackTimes  []time.Time
		enqErrors int
	)
	stopProducer := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i := 0; ; i++ {
			select {
			case <-stopProducer:
				return
			case <-time.After(5 * time.Millisecond):
			}
			id := fmt.Sprintf("late-%05d", i)
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := producer.Enqueue(cctx, q, i, &EnqueueOptions{MessageID: id})
			cancel()
			switch {
			case err != nil:
				enqErrors++
			case res.Action == ActionAdded:
				acked = append(acked, id)
				ackTimes = append(ackTimes, time.Now())
			}
		}
	}()

	require.Eventually(t, func() bool { return handledCount() >= failAt }, 30*time.Second, time.Millisecond)
	t0 := time.Now()
	newMaster := failover()
	t1 := time.Now()
	t.Logf("failover to %s: %v until the deployment was settled", newMaster, t1.Sub(t0).Round(time.Millisecond))

	// The worker resumes: a handling starts after the failover completed.
	require.Eventually(t, func() bool { return lastStart().After(t1) }, 30*time.Second, 5*time.Millisecond,
		"the worker must resume after the failover")
	time.Sleep(500 * time.Millisecond)
	close(stopProducer)
	<-producerDone

	// Wait until every acknowledged message is handled, or known lost:
	// gone from the queue without having been handled.
	want := make([]string, 0, pre+len(acked))
	for _, r := range reqs {
		want = append(want, r.Options.MessageID)
	}
	want = append(want, acked...)
	var lost, stuck []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		lost, stuck = nil, nil
		mu.Lock()
		var missing []string
		for _, id := range want {
			if handled[id] == 0 {
				missing = append(missing, id)
			}
		}
		mu.Unlock()
		for _, id := range missing {
			st, err := c.Inspector().MessageStatus(ctx, q, id)
			if err != nil {
				stuck = append(stuck, id+" ("+err.Error()+")")
				continue
			}
			mu.Lock()
			h := handled[id]
			mu.Unlock()
			switch {
			case h > 0:
			case st == StatusNone:
				lost = append(lost, id)
			default:
				stuck = append(stuck, id+" ("+st.String()+")")
			}
		}
		if len(stuck) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, stuck, "acknowledged messages not handled within 30 s of the failover")
	for _, id := range lost {
		require.NotContains(t, id, "pre-", "a message enqueued long before the failover was lost")
	}

	// What the failover cost.
	mu.Lock()
	dups := 0
	for _, n := range handled {
		if n > 1 {
			dups++
		}
	}
	firstAfter := func(tm time.Time) time.Time {
		i := sort.Search(len(starts), func(i int) bool { return starts[i].After(tm) })
		return starts[i] // exists: the worker resumed after t1
	}
	handlingGap, resumedAt := maxGap(starts, latest(t0.Add(-time.Second), starts[0]), firstAfter(t1))
	nHandled := len(handled)
	mu.Unlock()
	enqueueGap, _ := maxGap(ackTimes, latest(t0.Add(-time.Second), ackTimes[0]), ackTimes[len(ackTimes)-1])
	st := w.Stats()
	t.Logf("acknowledged: %d before the failover + %d by the producer (%d enqueue errors); handled %d distinct",
		pre, len(acked), enqErrors, nHandled)
	t.Logf("worker: longest pause between handlings %v, ending %v after the failover began; %d poll errors",
		handlingGap.Round(time.Millisecond), resumedAt.Sub(t0).Round(time.Millisecond), st.Counts.PollErrors)
	t.Logf("producer: longest pause between acknowledged enqueues %v", enqueueGap.Round(time.Millisecond))
	t.Logf("handled more than once (a lost lock or outcome): %d", dups)
	slices.Sort(lost)
	t.Logf("lost to async replication: %d %v", len(lost), lost)
	return failoverResult{lost: len(lost)}
}

// maxGap is the longest time between consecutive times in [from, to],
// counting the edges, and when it ended.
func maxGap(times []time.Time, from, to time.Time) (time.Duration, time.Time) {
	var longest time.Duration
	end := from
	prev := from
	for _, tm := range append(slices.Clone(times), to) {
		if tm.Before(from) || tm.After(to) {
			continue
		}
		if d := tm.Sub(prev); d > longest {
			longest, end = d, tm
		}
		prev = tm
	}
	return longest, end
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

package mq

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file run the queue on real deployments started by
// internal/redistest: a Redis Cluster of 3 masters with a replica each,
// and a primary with a replica watched by 3 sentinels. Like every test on
// real Redis they skip when redis-server is missing, unless
// MQ_REQUIRE_REDIS=1 or CI=true.

// clusterCtx bounds one test's Redis calls.
func clusterCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClusterClient(t *testing.T, rdb redis.UniversalClient) *Client {
	t.Helper()
	c, err := New(rdb, &Config{Cluster: true, Logger: testLogger(t)})
	require.NoError(t, err)
	return c
}

// TestCluster runs the protocol, administration and workers on one
// cluster, in subtests that share it (one after the other: ClearAllQueues
// clears everything).
func TestCluster(t *testing.T) {
	t.Parallel()
	rc := redistest.SharedCluster(t)
	cc := rc.Client(t)

	t.Run("KeysShareOneSlot", func(t *testing.T) {
		for _, q := range []string{"q", "orders", "a:b:c", "emails.outbound", "x y", "ünïcode"} {
			ks := keys.All(q, true)
			require.Len(t, ks, keys.Count)
			want := rc.Slot(t, "{"+q+"}")
			for _, k := range ks {
				require.Equal(t, want, rc.Slot(t, k), "key %s of queue %q", k, q)
			}
		}
		// Without cluster mode a queue's keys spread over slots: the
		// layout cannot work on a cluster.
		slots := map[int]bool{}
		for _, k := range keys.All("orders", false) {
			slots[rc.Slot(t, k)] = true
		}
		require.Greater(t, len(slots), 1)
	})

	t.Run("NewNeedsClusterMode", func(t *testing.T) {
		for _, cfg := range []*Config{nil, {}, {Cluster: false, MaxMessageSize: 10}} {
			_, err := New(cc, cfg)
			require.ErrorIs(t, err, ErrClusterModeRequired)
		}
		var u redis.UniversalClient = cc
		c, err := New(u, &Config{Cluster: true})
		require.NoError(t, err)
		ctx := clusterCtx(t, 10*time.Second)
		res, err := c.Enqueue(ctx, "new-needs-cluster-mode", "hello", nil)
		require.NoError(t, err)
		require.Equal(t, ActionAdded, res.Action)
		_, err = c.Inspector().ClearQueues(ctx, "new-needs-cluster-mode")
		require.NoError(t, err)
	})

	t.Run("QueuesSpreadAcrossMasters", func(t *testing.T) {
		ctx := clusterCtx(t, 30*time.Second)
		c := newClusterClient(t, cc)
		var queues []string
		want := map[string]string{} // queue -> master address
		for i := range 20 {
			q := fmt.Sprintf("spread:%02d", i)
			queues = append(queues, q)
			res, err := c.Enqueue(ctx, q, i, nil)
			require.NoError(t, err)
			require.True(t, res.OK())
			want[q] = rc.MasterFor(t, keys.Key(q, true, keys.Messages)).Addr
		}
		// Ask every master which queues it holds.
		got := map[string]string{}
		var mu sync.Mutex
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			for _, q := range queues {
				// A master answers MOVED for a slot it does not serve.
				n, err := node.Exists(ctx, keys.Key(q, true, keys.Messages)).Result()
				if err != nil && strings.HasPrefix(err.Error(), "MOVED ") {
					continue
				}
				if err != nil {
					return err
				}
				if n == 1 {
					// Not require: this runs off the test's goroutine.
					mu.Lock()
					other, dup := got[q]
					got[q] = node.Options().Addr
					mu.Unlock()
					if dup {
						return fmt.Errorf("queue %s on two masters, %s and %s", q, other, node.Options().Addr)
					}
				}
			}
			return nil
		}))
		require.Equal(t, want, got)
		masters := map[string]int{}
		for _, m := range got {
			masters[m]++
		}
		t.Logf("20 queues over the masters: %v", masters)
		require.GreaterOrEqual(t, len(masters), 2, "queues must spread over masters")

		names, err := c.Inspector().QueueNames(ctx, "spread:*")
		require.NoError(t, err)
		require.Equal(t, queues, names)
		names, err = c.Inspector().QueueNames(ctx, "")
		require.NoError(t, err)
		require.Subset(t, names, queues)

		cleared, err := c.Inspector().ClearAllQueues(ctx)
		require.NoError(t, err)
		require.Subset(t, cleared, queues)
		names, err = c.Inspector().QueueNames(ctx, "")
		require.NoError(t, err)
		require.Empty(t, names)
		for _, q := range queues {
			n, err := cc.Exists(ctx, keys.All(q, true)...).Result()
			require.NoError(t, err)
			require.Zero(t, n, "queue %s left keys", q)
		}
	})

	t.Run("Protocol", func(t *testing.T) {
		ctx := clusterCtx(t, 30*time.Second)
		c := newClusterClient(t, cc)
		const q = "protocol"

		res, err := c.Enqueue(ctx, q, "one", &EnqueueOptions{MessageID: "a"})
		require.NoError(t, err)
		require.Equal(t, EnqueueResult{MessageID: "a", Action: ActionAdded}, res)
		res, err = c.Enqueue(ctx, q, "one", &EnqueueOptions{MessageID: "a"})
		require.NoError(t, err)
		require.ErrorIs(t, res.Refused, ErrAlreadyQueued)
		res, err = c.Enqueue(ctx, q, "two", &EnqueueOptions{MessageID: "a", CanUpdate: true})
		require.NoError(t, err)
		require.Equal(t, ActionUpdated, res.Action)
		res, err = c.Enqueue(ctx, q, "later", &EnqueueOptions{MessageID: "b", InitialBackoff: time.Hour})
		require.NoError(t, err)
		require.Equal(t, ActionAdded, res.Action)

		st, err := c.Inspector().MessageStatus(ctx, q, "a")
		require.NoError(t, err)
		require.Equal(t, StatusQueued, st)
		st, err = c.Inspector().MessageStatus(ctx, q, "b")
		require.NoError(t, err)
		require.Equal(t, StatusQueuedWithBackoff, st)
		st, err = c.Inspector().MessageStatus(ctx, q, "nope")
		require.NoError(t, err)
		require.Equal(t, StatusNone, st)

		qs, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		require.Equal(t, QueueCounts{Queued: 1, Backoff: 1, Total: 2}, qs)

		content, err := c.Inspector().QueueContent(ctx, q)
		require.NoError(t, err)
		require.Len(t, content, 2)
		byID := map[string]MessageInfo{}
		for _, m := range content {
			byID[m.ID] = m
		}
		require.Equal(t, "two", byID["a"].Value)
		require.Equal(t, StatusQueued, byID["a"].Status)
		require.Equal(t, StatusQueuedWithBackoff, byID["b"].Status)
		require.Greater(t, byID["b"].Backoff, 59*time.Minute)

		// More than one script call's worth, pipelined on the cluster.
		reqs := make([]EnqueueRequest, 250)
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("many-%03d", i)}}
		}
		results, err := c.EnqueueMany(ctx, q, reqs...)
		require.NoError(t, err)
		for i, r := range results {
			require.Equal(t, ActionAdded, r.Action, "message %d", i)
		}
		results, err = c.EnqueueMany(ctx, q, reqs...)
		require.NoError(t, err)
		for i, r := range results {
			require.ErrorIs(t, r.Refused, ErrAlreadyQueued, "message %d", i)
		}
		size, err := c.Inspector().QueueSize(ctx, q)
		require.NoError(t, err)
		require.EqualValues(t, 251, size)

		// A worker drains it; the message in backoff stays.
		var handled atomic.Int64
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			HandlerThreads: 4,
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				handled.Add(1)
				return nil
			}),
		})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return handled.Load() == 251 }, 30*time.Second, 10*time.Millisecond)
		require.NoError(t, w.Stop(ctx))
		st, err = c.Inspector().MessageStatus(ctx, q, "a")
		require.NoError(t, err)
		require.Contains(t, []MessageStatus{StatusDoneAwaitingGC, StatusNone}, st)
		st, err = c.Inspector().MessageStatus(ctx, q, "b")
		require.NoError(t, err)
		require.Equal(t, StatusQueuedWithBackoff, st)

		cleared, err := c.Inspector().ClearQueues(ctx, q)
		require.NoError(t, err)
		require.Equal(t, []string{q}, cleared)
	})

	// FollowUps: a success's follow-ups to its own queue and to a queue of
	// the same slot go in the outcome's script (docs/protocol.md §22, "In
	// the script": no dedupe window, no relay); one to a queue of another
	// slot, which no script can reach, keeps the relay (handoffs, and the
	// window). Each is handled once.
	t.Run("FollowUps", func(t *testing.T) {
		ctx := clusterCtx(t, 60*time.Second)
		c := newClusterClient(t, cc)
		src := "fu:src"
		slot := rc.Slot(t, keys.Key(src, true, keys.Messages))
		var near, far string
		// The search by keys.Slot alone: a queue in src's slot takes some
		// 16,000 tries, and a CLUSTER KEYSLOT each made the subtest outlast
		// its context on a loaded machine. The server checks the two found.
		for i := 0; near == "" || far == ""; i++ {
			q := fmt.Sprintf("fu:%d", i)
			s := keys.Slot(keys.Key(q, true, keys.Messages))
			switch {
			case s == slot && near == "":
				near = q
			case s != slot && far == "":
				far = q
			}
		}
		for _, q := range []string{near, far} {
			require.Equal(t, rc.Slot(t, keys.Key(q, true, keys.Messages)), keys.Slot(keys.Key(q, true, keys.Messages)), "keys.Slot of %s", q)
		}
		type handling struct {
			queue, data string
			policy      *Policy
		}
		got := make(chan handling, 10)
		handler := HandlerFunc(func(ctx context.Context, m *Message) error {
			var data string
			if err := m.Decode(&data); err != nil {
				return err
			}
			got <- handling{m.Queue, data, m.Policy}
			if data != "start" {
				return nil
			}
			return Then(FollowUp{Message: "own"}, FollowUp{Queue: near, Message: "near"},
				FollowUp{Queue: far, Message: "far"})
		})
		var workers []*Worker
		for _, q := range []string{src, near, far} {
			w, err := c.StartWorker(t.Context(), q, &WorkerConfig{Handler: handler,
				EndOfQueueBackoff: Constant(20 * time.Millisecond)})
			require.NoError(t, err)
			workers = append(workers, w)
		}
		_, err := c.Enqueue(ctx, src, "start", nil)
		require.NoError(t, err)
		seen := map[string]handling{}
		for len(seen) < 4 {
			select {
			case h := <-got:
				_, again := seen[h.data]
				require.False(t, again, "%s handled twice", h.data)
				seen[h.data] = h
			case <-ctx.Done():
				t.Fatalf("handled only %v", seen)
			}
		}
		assert.Equal(t, src, seen["own"].queue)
		assert.Nil(t, seen["own"].policy, "in the script: no window")
		assert.Equal(t, near, seen["near"].queue)
		assert.Nil(t, seen["near"].policy, "in the script: no window")
		assert.Equal(t, far, seen["far"].queue)
		if assert.NotNil(t, seen["far"].policy, "through the relay") {
			assert.Equal(t, DefaultHandoffWindow, seen["far"].policy.UniqueFor)
		}
		relayed, err := cc.HExists(ctx, keys.Key(src, true, keys.Features), "handoffs").Result()
		require.NoError(t, err)
		assert.True(t, relayed, "the far one went to handoffs")
		require.Eventually(t, func() bool {
			n, err := c.Inspector().PendingHandoffs(ctx, src)
			return err == nil && n == 0
		}, 10*time.Second, 10*time.Millisecond)
		for _, w := range workers {
			require.NoError(t, w.Close())
		}
		_, err = c.Inspector().ClearQueues(ctx, src, near, far)
		require.NoError(t, err)
	})

	t.Run("WorkersInParallel", func(t *testing.T) {
		ctx := clusterCtx(t, 60*time.Second)
		c := newClusterClient(t, cc)
		// Four queues, on at least two masters (all three if the names
		// allow).
		var queues []string
		used := map[string]bool{}
		for i := 0; len(queues) < 4; i++ {
			q := fmt.Sprintf("workers:%d", i)
			m := rc.MasterFor(t, keys.Key(q, true, keys.Messages)).Addr
			if used[m] && len(used) < 3 && i < 50 {
				continue
			}
			used[m] = true
			queues = append(queues, q)
		}
		require.GreaterOrEqual(t, len(used), 2)

		const perQueue = 50
		for _, q := range queues {
			reqs := make([]EnqueueRequest, perQueue)
			for i := range reqs {
				reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("%s/%02d", q, i)}}
			}
			_, err := c.EnqueueMany(ctx, q, reqs...)
			require.NoError(t, err)
		}

		var mu sync.Mutex
		handled := map[string]int{}
		var total atomic.Int64
		var workers []*Worker
		for _, q := range queues {
			w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
				HandlerThreads: 4,
				WorkerThreads:  2,
				Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
					var n int
					if err := m.Decode(&n); err != nil {
						return err
					}
					if want := fmt.Sprintf("%s/%02d", m.Queue, n); m.ID != want {
						return fmt.Errorf("message %s holds %d", m.ID, n)
					}
					mu.Lock()
					handled[m.ID]++
					mu.Unlock()
					total.Add(1)
					time.Sleep(time.Millisecond)
					return nil
				}),
			})
			require.NoError(t, err)
			workers = append(workers, w)
		}
		require.Eventually(t, func() bool { return total.Load() >= int64(perQueue*len(queues)) },
			30*time.Second, 10*time.Millisecond)
		var success int64
		for _, w := range workers {
			require.NoError(t, w.Stop(ctx))
			st := w.Stats()
			success += st.Counts.Succeeded
			require.Zero(t, st.Counts.Failed, "queue %s", w.Queue())
		}
		require.EqualValues(t, perQueue*len(queues), success)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, handled, perQueue*len(queues))
		for id, n := range handled {
			require.Equal(t, 1, n, "message %s handled %d times", id, n)
		}
		for _, q := range queues {
			qs, err := c.Inspector().QueueCounts(ctx, q)
			require.NoError(t, err)
			require.Zero(t, qs.Queued, "queue %s", q)
		}
		_, err := c.Inspector().ClearQueues(ctx, queues...)
		require.NoError(t, err)
	})
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoffPipeline: A hands off to B and B to C (docs/protocol.md
// §22); every C is handled once, under the id derived from its handling,
// and no record is left behind; on miniredis, Redis and in the cluster
// layout, where A, B and C live in different slots.
func TestHandoffPipeline(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		qa := queuetest.QueueName(t)
		qb, qc := qa+"-b", qa+"-c"
		const n = 40
		var mu sync.Mutex
		seen := map[string]int{} // C's content -> handlings
		var ids []string
		all := make(chan struct{})
		hand := func(to string) Handler {
			return HandlerFunc(func(ctx context.Context, m *Message) error {
				var v string
				if err := m.Decode(&v); err != nil {
					return err
				}
				return Then(FollowUp{Queue: to, Message: v})
			})
		}
		cfg := func(h Handler) *WorkerConfig {
			return &WorkerConfig{Handler: h, EndOfQueueBackoff: Constant(20 * time.Millisecond)}
		}
		startSubscribed(t, c, qa, cfg(hand(qb)))
		startSubscribed(t, c, qb, cfg(hand(qc)))
		startSubscribed(t, c, qc, cfg(HandlerFunc(func(ctx context.Context, m *Message) error {
			var v string
			require.NoError(t, m.Decode(&v))
			mu.Lock()
			defer mu.Unlock()
			seen[v]++
			ids = append(ids, m.ID)
			if len(seen) == n {
				close(all)
			}
			return nil
		})))
		for i := range n {
			enqueue(t, c, qa, fmt.Sprint("v", i), nil)
		}
		select {
		case <-all:
		case <-time.After(60 * time.Second):
			t.Fatal("not every C handled")
		}
		queuetest.WaitFor(t, "the relays done", func() bool {
			for _, q := range []string{qa, qb} {
				if k, err := c.Inspector().PendingHandoffs(ctx, q); err != nil || k != 0 {
					return false
				}
			}
			return true
		})
		mu.Lock()
		defer mu.Unlock()
		for v, k := range seen {
			assert.Equal(t, 1, k, "%s handled once", v)
		}
		for _, id := range ids {
			assert.Regexp(t, `^.+/\d+/0/\d+/0$`, id, "derived from B's handling, itself derived from A's")
		}
	})
}

// TestHandoffRelayedTwice: a record delivered again (its relay died before
// removing it) enqueues nothing more, neither while the follow-up waits
// nor after it was handled: the follow-up's dedupe window refuses it.
func TestHandoffRelayedTwice(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	qa := queuetest.QueueName(t)
	qb := qa + "-b"
	// (a policy keeps it off the script's path, for the relay)
	rec, err := c.encodeFollowUps(ctx, qa, "p", 42, []FollowUp{{Queue: qb, Message: "x", Options: &EnqueueOptions{MaxAttempts: 5}}})
	require.NoError(t, err)
	push := func() { require.NoError(t, s.RDB.RPush(ctx, s.Key(qa, keys.Handoffs), rec).Err()) }

	push()
	push() // two relays at once, or one that died after the enqueue
	k, err := c.relay(ctx, qa)
	require.NoError(t, err)
	assert.Equal(t, 2, k)
	assert.Equal(t, int64(0), pending(t, c, qa))
	n, err := c.Inspector().QueueCounts(ctx, qb)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n.Queued, "enqueued once")

	handled := make(chan string, 10)
	_, ev := startSubscribed(t, c, qb, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error { handled <- m.ID; return nil })})
	waitAllSucceeded(t, ev, "p/42/0")
	push()
	_, err = c.relay(ctx, qa)
	require.NoError(t, err)
	st, err := c.Inspector().MessageStatus(ctx, qb, "p/42/0")
	require.NoError(t, err)
	assert.NotEqual(t, StatusQueued, st, "not enqueued again after its handling")
	assert.Len(t, handled, 1)
}

func pending(t *testing.T, c *Client, q string) int64 {
	t.Helper()
	n, err := c.Inspector().PendingHandoffs(context.Background(), q)
	require.NoError(t, err)
	return n
}

// TestHandoffLockLost: a success whose lock was lost hands off nothing.
func TestHandoffLockLost(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	qa := queuetest.QueueName(t)
	enqueue(t, c, qa, "x", &EnqueueOptions{MessageID: "m"})
	release := make(chan struct{})
	_, ev := startSubscribed(t, c, qa, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		NoLockRenewal: true, LockTime: time.Second, HandlerThreads: 2,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if m.Attempt == 1 {
				<-release
				return Then(FollowUp{Message: "lost"})
			}
			return nil
		})})
	// The lock runs out and the message is taken again: the first
	// handling's late success is fenced off.
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "m", 2))
	close(release)
	waitOutcomes(t, ev, map[Outcome]int{OutcomeLockLost: 1})
	assert.Equal(t, int64(0), pending(t, c, qa))
	n, err := c.Inspector().QueueCounts(ctx, qa)
	require.NoError(t, err)
	assert.EqualValues(t, 0, n.Queued, "no follow-up enqueued")
}

// TestBatchCompletes: a batch's completion is enqueued once its last
// member finished, once, with the members' counts; Inspector.Batch shows
// its progress.
func TestBatchCompletes(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q1 := queuetest.QueueName(t)
		q2, qd := q1+"-2", q1+"-done"
		var members []BatchMessage
		for i := range 20 {
			q := q1
			if i%2 == 1 {
				q = q2
			}
			members = append(members, BatchMessage{Queue: q, Message: i})
		}
		b, res, err := c.EnqueueBatch(ctx, members, BatchMessage{Queue: qd, Message: "all done"})
		require.NoError(t, err)
		require.Len(t, res, 20)
		info, err := c.Inspector().Batch(ctx, qd, b)
		require.NoError(t, err)
		assert.EqualValues(t, 20, info.Members)
		assert.Zero(t, info.Finished())
		assert.True(t, info.Done.IsZero())

		h := HandlerFunc(func(ctx context.Context, m *Message) error {
			var i int
			require.NoError(t, m.Decode(&i))
			if i%5 == 0 {
				return Final(errors.New("no"))
			}
			return nil
		})
		cfg := &WorkerConfig{Handler: h, EndOfQueueBackoff: Constant(20 * time.Millisecond)}
		startSubscribed(t, c, q1, cfg)
		startSubscribed(t, c, q2, cfg)
		got := make(chan BatchCounts, 10)
		startSubscribed(t, c, qd, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				bc, ok := m.BatchCounts()
				assert.True(t, ok)
				got <- bc
				return nil
			})})
		select {
		case bc := <-got:
			assert.Equal(t, BatchCounts{Batch: b, Succeeded: 16, Dead: 4}, bc)
		case <-time.After(60 * time.Second):
			t.Fatal("no completion")
		}
		info, err = c.Inspector().Batch(ctx, qd, b)
		require.NoError(t, err)
		assert.EqualValues(t, 16, info.Succeeded)
		assert.EqualValues(t, 4, info.Dead)
		assert.False(t, info.Done.IsZero())
		// Delivered again (a relay that died before removing it), a tick
		// counts nothing and the completion is not enqueued again.
		seen, err := s.RDB.ZRange(ctx, s.Key(qd, keys.BatchSeen), 0, 0).Result()
		require.NoError(t, err)
		require.Len(t, seen, 1)
		cut := strings.LastIndex(seen[0], "/")
		mid, udt := seen[0][:cut], seen[0][cut+1:]
		require.NoError(t, s.RDB.RPush(ctx, s.Key(q1, keys.Handoffs), "Ts\n"+udt+"\n"+b+"\n"+qd+"\n"+mid).Err())
		_, err = c.relay(ctx, q1)
		require.NoError(t, err)
		assert.Equal(t, int64(0), pending(t, c, q1), "delivered")
		info, err = c.Inspector().Batch(ctx, qd, b)
		require.NoError(t, err)
		assert.EqualValues(t, 16, info.Succeeded, "counted once")
		assert.EqualValues(t, 4, info.Dead)
		assert.Empty(t, got)
	})
}

// TestBatchCancelledMember: a member cancelled while being handled
// finishes its batch as cancelled, so the batch still completes, with the
// cancel counted apart.
func TestBatchCancelledMember(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	qd := q + "-done"
	members := []BatchMessage{
		{Queue: q, Message: 0, Options: &EnqueueOptions{MessageID: "slow"}},
		{Queue: q, Message: 1},
		{Queue: q, Message: 2},
	}
	b, _, err := c.EnqueueBatch(ctx, members, BatchMessage{Queue: qd, Message: "done"})
	require.NoError(t, err)
	running := make(chan struct{})
	startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if m.ID == "slow" {
				close(running)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})})
	got := completions(t, c, qd)
	<-running
	r, err := c.Cancel(ctx, q, "slow")
	require.NoError(t, err)
	require.Equal(t, CancelSignalled, r)
	assert.Equal(t, BatchCounts{Batch: b, Succeeded: 2, Cancelled: 1}, nextCompletion(t, got))
	info, err := c.Inspector().Batch(ctx, qd, b)
	require.NoError(t, err)
	assert.EqualValues(t, 3, info.Finished())
	assert.EqualValues(t, 1, info.Cancelled)
}

// TestBatchDeletedMember: a member deleted, or cancelled, while queued
// finishes its batch as cancelled, so that the batch still completes.
func TestBatchDeletedMember(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	qd := q + "-done"
	members := []BatchMessage{
		{Queue: q, Message: 0, Options: &EnqueueOptions{MessageID: "deleted"}},
		{Queue: q, Message: 1, Options: &EnqueueOptions{MessageID: "cancelled"}},
		{Queue: q, Message: 2},
	}
	b, _, err := c.EnqueueBatch(ctx, members, BatchMessage{Queue: qd, Message: "done"})
	require.NoError(t, err)
	deleted, err := c.Inspector().DeleteMessage(ctx, q, "deleted")
	require.NoError(t, err)
	require.True(t, deleted)
	r, err := c.Cancel(ctx, q, "cancelled")
	require.NoError(t, err)
	require.Equal(t, CancelRemoved, r)
	startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error { return nil })})
	got := completions(t, c, qd)
	assert.Equal(t, BatchCounts{Batch: b, Succeeded: 1, Cancelled: 2}, nextCompletion(t, got))
}

// completions runs a worker on the completion queue qd whose handler sends
// each completion's counts.
func completions(t *testing.T, c *Client, qd string) <-chan BatchCounts {
	t.Helper()
	got := make(chan BatchCounts, 1)
	startSubscribed(t, c, qd, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			bc, _ := m.BatchCounts()
			got <- bc
			return nil
		})})
	return got
}

// nextCompletion waits for the next completion of got: a member that never
// ticks leaves its batch incomplete, and the test fails here.
func nextCompletion(t *testing.T, got <-chan BatchCounts) BatchCounts {
	t.Helper()
	select {
	case bc := <-got:
		return bc
	case <-time.After(60 * time.Second):
		t.Fatal("no completion: a member never ticked its batch")
		return BatchCounts{}
	}
}

// TestOutcomeOfAnswer: a handler's Answer is mapped without an
// allocation when returned as it is (the usual Then), and still found
// when a middleware wrapped it.
func TestOutcomeOfAnswer(t *testing.T) {
	then := Then(FollowUp{Queue: "next", Message: "x"})
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = outcomeOf(then) }), "allocations per outcomeOf(Then(...))")
	oc := outcomeOf(fmt.Errorf("middleware: %w", then))
	assert.Equal(t, protocol.OutcomeSuccess, oc.name)
	assert.Len(t, oc.followUps, 1)
	oc = outcomeOf(fmt.Errorf("middleware: %w", Retry(time.Second)))
	assert.Equal(t, protocol.OutcomeRetry, oc.name)
	assert.Equal(t, time.Second, oc.backoff)
	assert.False(t, oc.failed)
}

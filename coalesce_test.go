package mq

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scriptGate is a go-redis hook that counts the script calls sent and can
// hold them before they are sent, so that a test decides which enqueue
// calls are in flight together.
type scriptGate struct {
	calls atomic.Int64
	mu    sync.Mutex
	hold  chan struct{} // while not nil, script calls wait for it to close
	held  atomic.Int64  // script calls waiting now
	// each holds a channel for every script call held since the gate
	// closed, in the order they came: closing one lets that call go.
	each []chan struct{}
}

func (g *scriptGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *scriptGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			g.calls.Add(1)
			g.mu.Lock()
			hold := g.hold
			g.mu.Unlock()
			if hold != nil {
				own := make(chan struct{})
				g.mu.Lock()
				g.each = append(g.each, own)
				g.mu.Unlock()
				g.held.Add(1)
				select {
				case <-hold:
				case <-own:
				}
				g.held.Add(-1)
			}
		}
		return next(ctx, cmd)
	}
}

func (g *scriptGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// close holds the script calls sent from now on.
func (g *scriptGate) close() {
	g.mu.Lock()
	g.hold = make(chan struct{})
	g.each = nil
	g.mu.Unlock()
}

// let lets the i-th script call held since the gate closed go.
func (g *scriptGate) let(i int) {
	g.mu.Lock()
	close(g.each[i])
	g.mu.Unlock()
}

// open lets every held script call go, and the ones after.
func (g *scriptGate) open() {
	g.mu.Lock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
	g.mu.Unlock()
}

// gated returns a client whose script calls go through a new gate.
func gated(t *testing.T, s *queuetest.Server) (*Client, *scriptGate) {
	g := &scriptGate{}
	s.RDB.AddHook(g)
	t.Cleanup(g.open)
	return newClient(t, s, nil), g
}

// waiting is how many Enqueue calls wait in q's group.
func (c *Client) waitingIn(q string) int {
	g := c.group(q)
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting)
}

// idle tells whether q's group has nothing in flight and nobody waiting:
// nothing of the coalescing runs.
func (c *Client) idle(q string) bool {
	g := c.group(q)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs == 0 && len(g.waiting) == 0
}

type enqueueOutcome struct {
	res EnqueueResult
	err error
}

// goEnqueue starts an Enqueue on its own goroutine; its outcome arrives on
// the channel.
func goEnqueue(ctx context.Context, c *Client, q string, msg any, opts *EnqueueOptions) <-chan enqueueOutcome {
	out := make(chan enqueueOutcome, 1)
	go func() {
		r, err := c.Enqueue(ctx, q, msg, opts)
		out <- enqueueOutcome{r, err}
	}()
	return out
}

// TestEnqueueCoalesced: calls that arrive while one is in flight go
// together in the next script call, each decided as if alone, in arrival
// order, each with its own answer; the first call went alone, at once.
func TestEnqueueCoalesced(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "old", &EnqueueOptions{MessageID: "old"}) // the script loaded
		gate.calls.Store(0)

		gate.close()
		first := goEnqueue(ctx, c, q, "first", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		// Arrival order is the order of the group's list: start each once
		// the one before waits.
		reqs := []struct {
			id   string
			opts EnqueueOptions
			want Action
			err  error
		}{
			{"a", EnqueueOptions{}, ActionAdded, nil},
			{"dup", EnqueueOptions{}, ActionAdded, nil},
			{"dup", EnqueueOptions{}, "", ErrAlreadyQueued},
			{"old", EnqueueOptions{CanUpdate: true, LockTime: 7 * time.Second}, ActionUpdated, nil},
			{"later", EnqueueOptions{InitialBackoff: time.Hour, Metadata: map[string]string{"k": "v"}}, ActionAdded, nil},
			{"first", EnqueueOptions{}, "", ErrAlreadyQueued},
		}
		outs := make([]<-chan enqueueOutcome, len(reqs))
		for i, r := range reqs {
			opts := r.opts
			opts.MessageID = r.id
			outs[i] = goEnqueue(ctx, c, q, "v-"+r.id, &opts)
			queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == i+1 })
		}
		gate.open()
		f := <-first
		require.NoError(t, f.err)
		assert.Equal(t, ActionAdded, f.res.Action)
		for i, r := range reqs {
			o := <-outs[i]
			require.NoError(t, o.err, "call %d", i)
			assert.Equal(t, r.id, o.res.MessageID)
			assert.Equal(t, r.want, o.res.Action, "call %d (%s)", i, r.id)
			if r.err != nil {
				assert.ErrorIs(t, o.res.Refused, r.err, "call %d (%s)", i, r.id)
			} else {
				assert.NoError(t, o.res.Refused, "call %d (%s)", i, r.id)
			}
		}
		assert.Equal(t, int64(2), gate.calls.Load(), "the first call alone, then the six waiting in one script call")
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })

		st, err := c.Inspector().MessageStatus(ctx, q, "later")
		require.NoError(t, err)
		assert.Equal(t, StatusQueuedWithBackoff, st)
		old, err := c.Inspector().Message(ctx, q, "old")
		require.NoError(t, err)
		assert.Equal(t, 7*time.Second, old.LockTime, "the update's lock time")
		// Handed out in arrival order ("old" queued before them all).
		_, calls := startWorker(t, c, q, WorkerConfig{HandlerThreads: 1}, nil)
		var order []string
		for range 4 {
			order = append(order, next(t, calls).id)
		}
		assert.Equal(t, []string{"old", "first", "a", "dup"}, order, "in arrival order")
	})
}

// TestEnqueueCoalescedGivenUp: a waiting caller whose context ends returns
// at once; if its message was not sent yet, it never is; the others are
// answered as if it had never come.
func TestEnqueueCoalescedGivenUp(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)

		gate.close()
		first := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		quitCtx, quit := context.WithCancel(ctx)
		gone := goEnqueue(quitCtx, c, q, "x", &EnqueueOptions{MessageID: "gone"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 1 })
		stays := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "stays"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 2 })
		quit()
		o := <-gone
		assert.ErrorIs(t, o.err, context.Canceled)
		assert.Equal(t, "gone", o.res.MessageID)
		assert.Equal(t, 1, c.waitingIn(q), "taken out of the group")

		// A deadline that passes while the batch is in flight: the caller
		// returns by it, the batch goes on for the others.
		late, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		lateOut := goEnqueue(late, c, q, "x", &EnqueueOptions{MessageID: "late"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 2 })
		gate.open()
		require.NoError(t, (<-first).err)
		for _, ch := range []<-chan enqueueOutcome{stays, lateOut} {
			o := <-ch
			require.NoError(t, o.err)
			assert.Equal(t, ActionAdded, o.res.Action)
		}
		st, err := c.Inspector().MessageStatus(ctx, q, "gone")
		require.NoError(t, err)
		assert.Equal(t, StatusNone, st, "never written")
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })

		// Given up while its call is in flight: it returns by its context;
		// the others of the call still get their answers.
		gate.close()
		first = goEnqueue(ctx, c, q, "x", nil)
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		quitCtx, quit = context.WithCancel(ctx)
		inFlight := goEnqueue(quitCtx, c, q, "x", &EnqueueOptions{MessageID: "in-flight"})
		other := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "other"})
		queuetest.WaitFor(t, "both waiting", func() bool { return c.waitingIn(q) == 2 })
		gate.mu.Lock()
		release := gate.hold
		gate.hold = make(chan struct{}) // the batch call is held in its turn
		gate.mu.Unlock()
		close(release)
		require.NoError(t, (<-first).err)
		queuetest.WaitFor(t, "the batch in flight", func() bool { return gate.held.Load() == 1 })
		quit()
		assert.ErrorIs(t, (<-inFlight).err, context.Canceled, "returns by its context")
		gate.open()
		o = <-other
		require.NoError(t, o.err)
		assert.Equal(t, ActionAdded, o.res.Action)
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
		st, err = c.Inspector().MessageStatus(ctx, q, "in-flight")
		require.NoError(t, err)
		assert.Equal(t, StatusQueued, st, "sent before it gave up: applied")
	})
}

// TestEnqueueCoalescedError: an error of the coalesced call reaches every
// caller of it, each wrapped as its own.
func TestEnqueueCoalescedError(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c, gate := gated(t, s)
	q := queuetest.QueueName(t)
	gate.close()
	first := goEnqueue(ctx, c, q, "x", nil)
	queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
	outs := []<-chan enqueueOutcome{goEnqueue(ctx, c, q, "x", nil)}
	queuetest.WaitFor(t, "waiting", func() bool { return c.waitingIn(q) == 1 })
	outs = append(outs, goEnqueue(ctx, c, q, "x", nil))
	queuetest.WaitFor(t, "waiting", func() bool { return c.waitingIn(q) == 2 })
	// The queue's messages key of another type: the script fails.
	require.NoError(t, s.RDB.Set(ctx, s.Key(q, keys.Messages), "not a hash", 0).Err())
	gate.open()
	assert.Error(t, (<-first).err)
	for _, ch := range outs {
		o := <-ch
		assert.ErrorContains(t, o.err, "WRONGTYPE")
		assert.ErrorContains(t, o.err, fmt.Sprintf("mq: enqueue to %q", q))
	}
	queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
}

// TestEnqueueConcurrentMany: many goroutines enqueueing at once, to a few
// queues, each get their own answer; every message is in its queue once,
// and the coalescing stops when they do.
func TestEnqueueConcurrentMany(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		qs := []string{queuetest.QueueName(t) + "-a", queuetest.QueueName(t) + "-b", queuetest.QueueName(t) + "-c"}
		const goroutines, each = 16, 25
		ids := make([][]string, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					r, err := c.Enqueue(ctx, qs[(g+i)%len(qs)], fmt.Sprint(g, i), nil)
					if !assert.NoError(t, err) || !assert.Equal(t, ActionAdded, r.Action) {
						return
					}
					ids[g] = append(ids[g], r.MessageID)
				}
			})
		}
		wg.Wait()
		calls := gate.calls.Load()
		want := map[string]int64{}
		seen := map[string]bool{}
		for g := range goroutines {
			require.Len(t, ids[g], each)
			for i, id := range ids[g] {
				st, err := c.Inspector().MessageStatus(ctx, qs[(g+i)%len(qs)], id)
				require.NoError(t, err)
				assert.Equal(t, StatusQueued, st)
				assert.False(t, seen[id])
				seen[id] = true
				want[qs[(g+i)%len(qs)]]++
			}
		}
		for _, q := range qs {
			qc, err := c.Inspector().QueueCounts(ctx, q)
			require.NoError(t, err)
			assert.Equal(t, QueueCounts{Queued: want[q], Total: want[q]}, qc, "each once in %s", q)
			queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
		}
		t.Logf("%d enqueues in %d script calls", goroutines*each, calls)
	})
}

// TestEnqueueAloneNoWait: with nothing in flight, a call goes at once on
// its caller's goroutine: a caller given a context that is already done
// fails without a script call.
func TestEnqueueAloneNoWait(t *testing.T) {
	s := queuetest.MiniServer(t)
	c, gate := gated(t, s)
	q := queuetest.QueueName(t)
	enqueue(t, c, q, "x", nil) // the script loaded
	gate.calls.Store(0)
	enqueue(t, c, q, "x", nil)
	assert.Equal(t, int64(1), gate.calls.Load())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Enqueue(ctx, q, "x", nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(1), gate.calls.Load(), "no script call")
	assert.True(t, c.idle(q))
}

// TestEnqueueCoalescedGivenUpNotReused: a caller that gave up while its
// message was in flight leaves its waiter to the runner, which answers it
// later; a call that comes meanwhile gets a waiter of its own, and so its
// own answer, not the one meant for the caller that gave up.
func TestEnqueueCoalescedGivenUpNotReused(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)
		_, err := c.Enqueue(ctx, q, "x", &EnqueueOptions{MessageID: "held"})
		require.NoError(t, err)

		gate.close()
		first := goEnqueue(ctx, c, q, "x", nil)
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		quitCtx, quit := context.WithCancel(ctx)
		gaveUp := goEnqueue(quitCtx, c, q, "x", &EnqueueOptions{MessageID: "held"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 1 })
		gate.mu.Lock()
		release := gate.hold
		gate.hold = make(chan struct{}) // its call is held in its turn
		gate.mu.Unlock()
		close(release)
		require.NoError(t, (<-first).err)
		queuetest.WaitFor(t, "its call in flight", func() bool { return gate.held.Load() == 1 })
		quit()
		require.ErrorIs(t, (<-gaveUp).err, context.Canceled)

		next := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "next"})
		queuetest.WaitFor(t, "the next call waiting", func() bool { return c.waitingIn(q) == 1 })
		gate.open() // the call given up on answers "already queued"
		o := <-next
		require.NoError(t, o.err)
		assert.Equal(t, "next", o.res.MessageID)
		assert.NoError(t, o.res.Refused, "its own answer, not the one given up on")
		assert.Equal(t, ActionAdded, o.res.Action)
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
	})
}

// runsIn is how many script calls of q's group are in flight or about to
// be.
func (c *Client) runsIn(q string) int {
	g := c.group(q)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs
}

// overlapCallers starts overlapAt Enqueue calls of ids while the group's
// one call is held at the gate, each once the one before waits; the last
// makes them enough for a second call, which they go in at once, held at
// the gate in its turn. It answers their outcomes, in order.
func overlapCallers(t *testing.T, c *Client, gate *scriptGate, q string, ctxs []context.Context, ids []string) []<-chan enqueueOutcome {
	t.Helper()
	require.Len(t, ids, overlapAt)
	outs := make([]<-chan enqueueOutcome, len(ids))
	for i, id := range ids {
		outs[i] = goEnqueue(ctxs[i], c, q, "v-"+id, &EnqueueOptions{MessageID: id})
		if i < len(ids)-1 {
			queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == i+1 })
			require.Equal(t, 1, c.runsIn(q), "too few for a second call: one in flight")
		}
	}
	queuetest.WaitFor(t, "a second call in flight", func() bool { return gate.held.Load() == 2 && c.waitingIn(q) == 0 })
	assert.Equal(t, 2, c.runsIn(q))
	return outs
}

// TestEnqueueCoalescedOverlap: while one call is in flight, overlapAt
// waiting calls go in a second call at once, each with its own answer,
// decided as if alone in arrival order within their call; fewer wait for
// a call to return, and then go in one call.
func TestEnqueueCoalescedOverlap(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "old", &EnqueueOptions{MessageID: "old"}) // the script loaded
		gate.calls.Store(0)

		gate.close()
		first := goEnqueue(ctx, c, q, "first", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		ctxs, ids := make([]context.Context, overlapAt), make([]string, overlapAt)
		for i := range ids {
			ctxs[i], ids[i] = ctx, fmt.Sprint("m", i)
		}
		ids[5] = "m3"
		outs := overlapCallers(t, c, gate, q, ctxs, ids)

		// Two in flight: the calls that come now wait for one to return.
		late := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 1 })
		late2 := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "late2"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 2 })
		assert.Equal(t, 2, c.runsIn(q), "no third call")
		assert.Equal(t, int64(2), gate.held.Load())

		// The first call returns: the two waiting are too few for a call
		// beside the one still in flight, and wait for it.
		gate.let(0)
		f := <-first
		require.NoError(t, f.err)
		assert.Equal(t, ActionAdded, f.res.Action)
		queuetest.WaitFor(t, "the first call's run ended", func() bool { return c.runsIn(q) == 1 })
		assert.Equal(t, 2, c.waitingIn(q), "left to the call in flight")
		assert.Equal(t, int64(1), gate.held.Load(), "no call sent")

		gate.open()
		for i, id := range ids {
			o := <-outs[i]
			require.NoError(t, o.err, "call %d", i)
			assert.Equal(t, id, o.res.MessageID, "call %d", i)
			if i == 5 {
				assert.ErrorIs(t, o.res.Refused, ErrAlreadyQueued, "call %d: m3 added by call 3 of the same script call", i)
			} else {
				assert.NoError(t, o.res.Refused, "call %d", i)
				assert.Equal(t, ActionAdded, o.res.Action, "call %d", i)
			}
		}
		o := <-late
		require.NoError(t, o.err)
		assert.ErrorIs(t, o.res.Refused, ErrAlreadyQueued, "sent after the first call returned")
		o = <-late2
		require.NoError(t, o.err)
		assert.Equal(t, ActionAdded, o.res.Action)
		// The first alone, the overlapAt waiting in a second, the late two
		// in a third; the second and third each hold an id that is in the
		// queue by the time they run, and so go on from enqueue-new.lua to
		// enqueue.lua: two script calls each.
		assert.Equal(t, int64(1+2+2), gate.calls.Load())
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
		qc, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, int64(1+1+overlapAt-1+1), qc.Queued)
	})
}

// TestEnqueueCoalescedOverlapGivenUp: a caller of the second call in
// flight whose context ends returns at once, its message applied, and the
// others of that call are answered; a caller waiting while two are in
// flight whose context ends is never written.
func TestEnqueueCoalescedOverlapGivenUp(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "old", nil) // the script loaded
		gate.calls.Store(0)

		gate.close()
		first := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		ctxs, ids := make([]context.Context, overlapAt), make([]string, overlapAt)
		for i := range ids {
			ctxs[i], ids[i] = ctx, fmt.Sprint("m", i)
		}
		inFlight, quitInFlight := context.WithCancel(ctx)
		defer quitInFlight()
		ctxs[2], ids[2] = inFlight, "in-flight"
		outs := overlapCallers(t, c, gate, q, ctxs, ids)

		notSent, quitNotSent := context.WithCancel(ctx)
		defer quitNotSent()
		gone := goEnqueue(notSent, c, q, "x", &EnqueueOptions{MessageID: "not-sent"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 1 })
		stays := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "stays"})
		queuetest.WaitFor(t, "the call waiting", func() bool { return c.waitingIn(q) == 2 })

		quitInFlight()
		o := <-outs[2]
		assert.ErrorIs(t, o.err, context.Canceled, "returns by its context, its call held")
		assert.Equal(t, "in-flight", o.res.MessageID)
		quitNotSent()
		o = <-gone
		assert.ErrorIs(t, o.err, context.Canceled)
		assert.Equal(t, 1, c.waitingIn(q), "taken out of the group")
		assert.Equal(t, int64(2), gate.held.Load(), "both calls still held")

		gate.open()
		require.NoError(t, (<-first).err)
		for i, ch := range outs {
			if i == 2 {
				continue
			}
			o := <-ch
			require.NoError(t, o.err, "call %d", i)
			assert.Equal(t, ids[i], o.res.MessageID)
			assert.Equal(t, ActionAdded, o.res.Action, "call %d", i)
		}
		o = <-stays
		require.NoError(t, o.err)
		assert.Equal(t, ActionAdded, o.res.Action)
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
		assert.Equal(t, int64(3), gate.calls.Load())
		for id, want := range map[string]MessageStatus{"in-flight": StatusQueued, "not-sent": StatusNone, "stays": StatusQueued} {
			st, err := c.Inspector().MessageStatus(ctx, q, id)
			require.NoError(t, err)
			assert.Equal(t, want, st, id)
		}
	})
}

// TestEnqueueCoalescedOverlapBacklog: two calls in flight to a queue whose
// mids-ready held the wake backlog both go short (docs/protocol.md §3);
// the backlog gone by the time they run, each changes nothing, answers
// so, and goes again full: every caller's message is added once, and the
// calls after go full at once.
func TestEnqueueCoalescedOverlapBacklog(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c, gate := gated(t, s)
		q := queuetest.QueueName(t)
		fill := make([]any, protocol.WakeBacklog)
		for i := range fill {
			fill[i] = fmt.Sprint("r", i)
		}
		require.NoError(t, s.RDB.RPush(ctx, s.Key(q, keys.MidsReady), fill...).Err())
		// The first call loads enqueue-new.lua, the second finds the
		// backlog (short from now on), the third loads the short call's
		// script.
		for _, id := range []string{"load", "deep", "short"} {
			enqueue(t, c, q, "x", &EnqueueOptions{MessageID: id})
		}
		gate.calls.Store(0)

		gate.close()
		first := goEnqueue(ctx, c, q, "x", &EnqueueOptions{MessageID: "first"})
		queuetest.WaitFor(t, "the first call in flight", func() bool { return gate.held.Load() == 1 })
		ctxs, ids := make([]context.Context, overlapAt), make([]string, overlapAt)
		for i := range ids {
			ctxs[i], ids[i] = ctx, fmt.Sprint("m", i)
		}
		outs := overlapCallers(t, c, gate, q, ctxs, ids)
		require.NoError(t, s.RDB.Del(ctx, s.Key(q, keys.MidsReady)).Err())
		gate.open()

		f := <-first
		require.NoError(t, f.err)
		assert.Equal(t, ActionAdded, f.res.Action)
		for i, ch := range outs {
			o := <-ch
			require.NoError(t, o.err, "call %d", i)
			assert.Equal(t, ids[i], o.res.MessageID)
			assert.Equal(t, ActionAdded, o.res.Action, "call %d", i)
		}
		queuetest.WaitFor(t, "the group idle", func() bool { return c.idle(q) })
		assert.Equal(t, int64(2+2), gate.calls.Load(), "both short, each again full")
		ready, err := s.RDB.LRange(ctx, s.Key(q, keys.MidsReady), 0, -1).Result()
		require.NoError(t, err)
		assert.ElementsMatch(t, append([]string{"first"}, ids...), ready, "each once")

		gate.calls.Store(0)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "after"})
		assert.Equal(t, int64(1), gate.calls.Load(), "full at once")
	})
}

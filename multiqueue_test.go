package mq

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startMulti makes a multi-queue worker of c with cfg and handler, starts
// it, and closes it when the test ends.
func startMulti(t *testing.T, c *Client, order QueueOrder, cfg WorkerConfig, h HandlerFunc) *MultiWorker {
	t.Helper()
	cfg.Handler = h
	if cfg.EndOfQueueBackoff == nil {
		cfg.EndOfQueueBackoff = Constant(20 * time.Millisecond)
	}
	m, err := c.NewMultiWorker(order, &cfg)
	require.NoError(t, err)
	require.NoError(t, m.Start(t.Context()))
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// enqueueN enqueues n messages to q, with ids "<q>/<i>".
func enqueueN(t *testing.T, c *Client, q string, n int) {
	t.Helper()
	for i := range n {
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: fmt.Sprintf("%s/%d", q, i)})
	}
}

// handledLog is a handler that records, in order, the queue of every
// message it handles, and checks that Message.Queue is the message's.
type handledLog struct {
	t      *testing.T
	mu     sync.Mutex
	queues []string
}

func (l *handledLog) handle(_ context.Context, m *Message) error {
	assert.True(l.t, strings.HasPrefix(m.ID, m.Queue+"/"), "message %s handed out as one of %s", m.ID, m.Queue)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queues = append(l.queues, m.Queue)
	return nil
}

func (l *handledLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.queues...)
}

func (l *handledLog) count(q string) int {
	n := 0
	for _, x := range l.snapshot() {
		if x == q {
			n++
		}
	}
	return n
}

// TestMultiStrictOrder: with a backlog in both queues, strict order
// drains the first before it hands out any message of the second, though
// the first's polls each take one message.
func TestMultiStrictOrder(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	const n = 40
	enqueueN(t, c, qb, n)
	enqueueN(t, c, qa, n)
	log := &handledLog{t: t}
	startMulti(t, c, Strict{qa, qb}, WorkerConfig{HandlerThreads: 1, Prefetch: -1}, log.handle)
	queuetest.WaitFor(t, "every message handled", func() bool { return len(log.snapshot()) == 2*n })
	got := log.snapshot()
	for i, q := range got {
		want := qa
		if i >= n {
			want = qb
		}
		require.Equal(t, want, q, "handling %d of %v", i, got)
	}
}

// TestMultiWeightedShares: weights 3:1 over 4 handler threads. Every
// handling waits for the test, which lets them go 4 at a time, each round
// the 4 the round before started (a release meant for one of those and
// taken by a handling started since would let a share's slot turn twice
// in one round): while only the first queue has messages it holds all 4
// (the second lends its share); once the second has a backlog, every
// round holds exactly 3 of the first and 1 of the second, until the
// second is drained.
func TestMultiWeightedShares(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	const nb = 12
	enqueueN(t, c, qa, 4*nb+20)
	type handling struct {
		queue string
		done  chan struct{} // closed by the test to let it end
	}
	started := make(chan handling, 100)
	end := make(chan struct{}) // closed at the end: lets every handling go
	m := startMulti(t, c, Weighted{{qa, 3}, {qb, 1}}, WorkerConfig{HandlerThreads: 4, Prefetch: -1},
		func(ctx context.Context, msg *Message) error {
			h := handling{queue: msg.Queue, done: make(chan struct{})}
			started <- h
			select {
			case <-h.done:
			case <-end:
			case <-ctx.Done():
			}
			return nil
		})
	var running []handling // the round's, until let
	round := func() map[string]int {
		t.Helper()
		got := map[string]int{}
		for range 4 {
			select {
			case h := <-started:
				got[h.queue]++
				running = append(running, h)
			case <-time.After(eventTimeout):
				t.Fatalf("timed out waiting for 4 handlings; got %v", got)
			}
		}
		return got
	}
	let := func() {
		for _, h := range running {
			close(h.done)
		}
		running = nil
	}
	t.Cleanup(func() { close(end) })
	assert.Equal(t, map[string]int{qa: 4}, round(), "the idle queue lends its share")
	enqueueN(t, c, qb, nb)
	queuetest.WaitFor(t, "the second queue's loop awake", m.workers[1].room.Awake)
	for i := range nb {
		let()
		require.Equal(t, map[string]int{qa: 3, qb: 1}, round(), "round %d with both queues busy", i)
	}
}

// TestMultiPausedQueue: a paused queue first in strict order does not hold
// the second back; resumed, it is handled again.
func TestMultiPausedQueue(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	ctx := context.Background()
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	_, err := c.Inspector().PauseQueue(ctx, qa)
	require.NoError(t, err)
	enqueueN(t, c, qa, 5)
	enqueueN(t, c, qb, 5)
	log := &handledLog{t: t}
	startMulti(t, c, Strict{qa, qb}, WorkerConfig{HandlerThreads: 2}, log.handle)
	queuetest.WaitFor(t, "the second queue handled", func() bool { return log.count(qb) == 5 })
	assert.Zero(t, log.count(qa), "the paused queue handed out")
	_, err = c.Inspector().ResumeQueue(ctx, qa)
	require.NoError(t, err)
	queuetest.WaitFor(t, "the first queue handled", func() bool { return log.count(qa) == 5 })
}

// TestMultiStopDrains: a stop in the middle of a backlog in both queues
// leaves nothing locked: each message is handled or queued again; each
// queue's statistics count its own handlings, and its live worker tells
// the worker's queues until the stop.
func TestMultiStopDrains(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	ctx := context.Background()
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	const n = 60
	enqueueN(t, c, qa, n)
	enqueueN(t, c, qb, n)
	log := &handledLog{t: t}
	m := startMulti(t, c, Weighted{{qa, 1}, {qb, 1}}, WorkerConfig{HandlerThreads: 3},
		func(ctx context.Context, msg *Message) error {
			time.Sleep(time.Millisecond) // a handling that takes a while
			return log.handle(ctx, msg)
		})
	queuetest.WaitFor(t, "handlings in both queues", func() bool { return log.count(qa) >= 5 && log.count(qb) >= 5 })
	var live []LiveWorker
	queuetest.WaitFor(t, "the live worker", func() bool {
		var err error
		live, err = c.Inspector().Workers(ctx, qb)
		require.NoError(t, err)
		return len(live) == 1
	})
	assert.Equal(t, []QueueWeight{{qa, 1}, {qb, 1}}, live[0].Queues)
	assert.False(t, live[0].Strict)
	assert.Equal(t, 3, live[0].HandlerThreads)

	stopCtx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	require.NoError(t, m.Stop(stopCtx))
	info := m.Info()
	for i, q := range []string{qa, qb} {
		counts, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.Zero(t, counts.Locked, "%s: locked after the stop", q)
		handled := log.count(q)
		assert.Equal(t, int64(n-handled), counts.Total, "%s: handled %d", q, handled)
		assert.Equal(t, int64(handled), info[i].Stats.Counts.Succeeded, "%s: its statistics", q)
		live, err := c.Inspector().Workers(ctx, q)
		require.NoError(t, err)
		assert.Empty(t, live, "%s: live workers after the stop", q)
	}
	// Started again, it handles the rest.
	require.NoError(t, m.Start(t.Context()))
	queuetest.WaitFor(t, "the rest handled", func() bool { return len(log.snapshot()) == 2*n })
}

// TestMultiWorkerOptions: bad queue lists are refused with a clear error.
func TestMultiWorkerOptions(t *testing.T) {
	t.Parallel()
	c := newClient(t, queuetest.MiniServer(t), nil)
	cfg := &WorkerConfig{Handler: nopHandler}
	for _, order := range []QueueOrder{nil, Strict{}, Strict{"a", "a"}, Weighted{{"a", 0}}, Strict{""}} {
		_, err := c.NewMultiWorker(order, cfg)
		assert.Error(t, err, "%v", order)
	}
	_, err := c.NewMultiWorker(Weighted{{"a", 2}, {"b", 1}}, nil)
	assert.ErrorIs(t, err, ErrInvalidOption, "no handler")
}

// TestHoldingsPerClient: two clients of one process sharing a queue each
// count what their own workers hold, for the held their polls tell Redis
// (quarantine, docs/protocol.md §11): a message held by one client's
// worker is not counted by the other's.
func TestHoldingsPerClient(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	ca, cb := newClient(t, s, nil), newClient(t, s, nil)
	q := queuetest.QueueName(t)
	release := make(chan struct{})
	defer close(release)
	_, calls := startWorker(t, ca, q, WorkerConfig{}, func(ctx context.Context, h handling) error {
		<-release
		return nil
	})
	enqueue(t, ca, q, "x", &EnqueueOptions{MessageID: "held"})
	next(t, calls)
	_, _, evb := startWorkerEvents(t, cb, q, WorkerConfig{}, nil)
	waitAsleep(t, evb)
	assert.Equal(t, 1, ca.room0().Held(0), "the first client holds its message")
	assert.Zero(t, cb.room0().Held(0), "the second client counts the first's message")
}

// room0 is the room of one of c's running workers: its Held is what
// that worker's polls tell Redis.
func (c *Client) room0() *engine.Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.workers {
		return w.room
	}
	return nil
}

// TestMultiWorkerQueues: the workers of a multi-queue worker's queues can
// be read, not started on their own; stopping one stops the whole worker,
// and Client.Close closes it.
func TestMultiWorkerQueues(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	log := &handledLog{t: t}
	m := startMulti(t, c, Weighted{{qa, 1}, {qb, 2}}, WorkerConfig{HandlerThreads: 2}, log.handle)
	ws := m.Workers()
	require.Len(t, ws, 2)
	assert.Equal(t, qb, ws[1].Queue())
	assert.ErrorIs(t, ws[0].Start(t.Context()), ErrInvalidOption)
	enqueueN(t, c, qb, 3)
	queuetest.WaitFor(t, "the second queue's successes counted", func() bool { return ws[1].Stats().Counts.Succeeded == 3 })
	assert.Equal(t, 3, log.count(qb))

	require.NoError(t, ws[1].Stop(t.Context()))
	for _, in := range m.Info() {
		assert.False(t, in.Running, "%s runs after one queue's Stop", in.Queue)
	}
	require.NoError(t, m.Start(t.Context()))
	require.ErrorIs(t, m.Start(t.Context()), ErrWorkerRunning)
	require.NoError(t, c.Close())
	for _, in := range m.Info() {
		assert.False(t, in.Running, "%s runs after Client.Close", in.Queue)
	}
	require.ErrorIs(t, m.Start(t.Context()), ErrClientClosed)
}

// TestMultiCancel: a cancel reaches a handling of any queue of a
// multi-queue worker through the subscription (no lock renewal to fall
// back on), each queue's handlings watched under its own channel.
func TestMultiCancel(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	ctx := context.Background()
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"
	running := make(chan string, 2)
	causes := make(chan error, 2)
	startMulti(t, c, Weighted{{qa, 1}, {qb, 1}}, WorkerConfig{HandlerThreads: 2, NoLockRenewal: true},
		func(ctx context.Context, m *Message) error {
			running <- m.Queue
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		})
	for _, q := range []string{qb, qa} {
		_, err := c.Enqueue(ctx, q, "x", &EnqueueOptions{MessageID: "x"})
		require.NoError(t, err)
		require.Equal(t, q, <-running)
		r, err := c.Cancel(ctx, q, "x")
		require.NoError(t, err)
		require.Equal(t, CancelSignalled, r)
		select {
		case err := <-causes:
			assert.ErrorIs(t, err, ErrCancelled, "queue %s", q)
		case <-time.After(30 * time.Second):
			t.Fatalf("the handling of queue %s never heard its cancel", q)
		}
	}
}

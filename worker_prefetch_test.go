package mq

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prefetchSetup starts a worker whose handler holds the message "block"
// until release is closed, warms it up with quick handlings (which turn
// prefetching on), then enqueues "block" and n more messages m0..m(n-1),
// in one call, with opts.
func prefetchSetup(t *testing.T, c *Client, q string, n int, opts *EnqueueOptions) (*Worker, <-chan handling, <-chan Event, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{}, func(ctx context.Context, h handling) error {
		if h.value == "block" {
			<-release
		}
		return nil
	})
	warmUp(t, c, w, q, calls)
	reqs := []EnqueueRequest{{Message: "block", Options: &EnqueueOptions{MessageID: "block"}}}
	for i := range n {
		o := EnqueueOptions{MessageID: fmt.Sprint("m", i)}
		if opts != nil {
			o.LockTime = opts.LockTime
		}
		reqs = append(reqs, EnqueueRequest{Message: fmt.Sprint("m", i), Options: &o})
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	require.Equal(t, "block", next(t, calls).value)
	return w, calls, ev, release
}

// warmUp has w handle quick messages until it prefetches. Prefetching
// follows the mean of recent handling times, which a loaded machine can
// stretch past prefetchMaxHandling: a fixed number of quick handlings
// (ten, once) left it off beside a CPU-bound loop, and the test's
// messages were not prefetched.
func warmUp(t *testing.T, c *Client, w *Worker, q string, calls <-chan handling) {
	t.Helper()
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "prefetching never turned on")
		enqueue(t, c, q, fmt.Sprint("warm", i), nil)
		next(t, calls)
		// Done with: its handling time is in the mean.
		queuetest.WaitFor(t, "the handling done with", func() bool { return w.room.Taken() == 0 })
		if w.room.Prefetching() {
			return
		}
	}
}

// TestWorkerPrefetchStop: messages prefetched behind a busy handler are
// given back when the worker stops: unlocked, their attempt uncounted, and
// handled once by the next worker.
func TestWorkerPrefetchStop(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		ctx := context.Background()
		const count = defaultPrefetch + 14
		w, _, ev, release := prefetchSetup(t, c, q, count, nil)

		// One handler busy, defaultPrefetch more taken and waiting.
		queuetest.WaitFor(t, "the prefetch to fill", func() bool {
			st, err := c.Inspector().QueueCounts(ctx, q)
			require.NoError(t, err)
			return st.Locked == 1+defaultPrefetch
		})
		stopped := make(chan error, 1)
		go func() { stopped <- w.Stop(ctx) }()
		waitKind(t, ev, EventReleased, defaultPrefetch)
		close(release)
		require.NoError(t, <-stopped)

		assert.Equal(t, StatusQueued, statusOf(t, c, q, "m0"))
		assert.Equal(t, StatusNone, statusOf(t, c, q, "block"), "block's outcome recorded: collected")

		_, calls := startWorker(t, c, q, WorkerConfig{}, nil)
		seen := map[string]int{}
		for range count {
			h := next(t, calls)
			seen[h.value]++
			assert.Equal(t, 1, h.attempt, "%s: the attempt given back was not counted", h.value)
		}
		assert.Len(t, seen, count, "each message handled once")
	})
}

// TestWorkerPrefetchStale: a prefetched message that waited for a handler
// longer than a quarter of its lock time is given back, not started, and
// handled later; no message is handled twice unless its lock ran out
// before its outcome was recorded. (With 200 ms locks a loaded machine
// can take that long between a handling and its record, once under
// -race: the message is then handed out again, as its lock time allows,
// and the late outcome is fenced, OutcomeLockLost.)
func TestWorkerPrefetchStale(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		w, calls, ev, release := prefetchSetup(t, c, q, 5, &EnqueueOptions{LockTime: 200 * time.Millisecond})

		// Hold "block" until the prefetched messages' locks have run out.
		queuetest.WaitFor(t, "m0's lock to expire", func() bool { return statusOf(t, c, q, "m0") == StatusQueued })
		close(release)
		ids := map[string]bool{"m0": true, "m1": true, "m2": true, "m3": true, "m4": true}
		succeeded, lost := map[string]bool{}, map[string]int{}
		for len(succeeded) < len(ids) {
			e := waitEvent(t, ev, "the messages to succeed", func(e Event) bool { return e.Kind == EventHandled && ids[e.ID] })
			switch e.Outcome {
			case OutcomeSucceeded:
				succeeded[e.ID] = true
			case OutcomeLockLost:
				lost[e.ID]++
			}
		}
		assert.Positive(t, w.Stats().Counts.Released, "stale messages given back")
		// Every handling started before its outcome was recorded.
		seen := map[string]int{}
		for len(calls) > 0 {
			seen[next(t, calls).value]++
		}
		assert.Len(t, seen, len(ids), "each message handled")
		for id, n := range seen {
			// A handling again is one whose earlier lock was lost, which
			// the fenced outcome tells, maybe after the success.
			for lost[id] < n-1 {
				e := waitEvent(t, ev, id+" handled again: its lock lost", func(e Event) bool { return e.Kind == EventHandled && ids[e.ID] })
				if e.Outcome == OutcomeLockLost {
					lost[e.ID]++
				}
			}
		}
	})
}

// TestWorkerPrefetchOutcomeNotHeld: while the loop waits for room to take
// many messages at once, an outcome handed in meanwhile is still recorded
// promptly, not held until enough other handlings finish (which, with slow
// handlings, could outlast the message's lock).
func TestWorkerPrefetchOutcomeNotHeld(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		gate := make(chan struct{})
		// A lock time no stall of a loaded machine comes near a quarter
		// of: a prefetched message that waited that long is given back
		// as stale (Delivery.stale), not handed out, so that with the
		// default 30 s a 7.5 s stall before the gate released slow1 and
		// the handler saw a later message.
		cfg := WorkerConfig{LockTime: time.Hour}
		w, calls, ev := startWorkerEvents(t, c, q, cfg, func(ctx context.Context, h handling) error {
			if strings.HasPrefix(h.value, "slow") {
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			return nil
		})
		t.Cleanup(func() { close(gate) })
		warmUp(t, c, w, q, calls)
		var reqs []EnqueueRequest
		for i := range defaultPrefetch + 4 {
			id := fmt.Sprint("slow", i)
			reqs = append(reqs, EnqueueRequest{Message: id, Options: &EnqueueOptions{MessageID: id}})
		}
		_, err := c.EnqueueMany(context.Background(), q, reqs...)
		require.NoError(t, err)
		require.Equal(t, "slow0", next(t, calls).value)
		queuetest.WaitFor(t, "the prefetch to fill", func() bool {
			st, err := c.Inspector().QueueCounts(context.Background(), q)
			require.NoError(t, err)
			return st.Locked == 1+defaultPrefetch
		})

		gate <- struct{}{} // slow0 finishes; slow1 starts and holds
		require.Equal(t, "slow1", next(t, calls).value)
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "slow0", 1), "slow0's outcome recorded, slow1 still held")
	})
}

// TestWorkerBurstPoll: while the queue is busy, a prefetching worker keeps
// a second poll in flight; every message is still handled once, at its
// first attempt, and once the queue is empty the second poll stops.
func TestWorkerBurstPoll(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		const n = 3000
		var mu sync.Mutex
		seen := map[string]int{}
		retried := 0
		w, ev := handleAll(t, c, q, n, &WorkerConfig{
			HandlerThreads:    4,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(_ context.Context, m *Message) error {
				mu.Lock()
				defer mu.Unlock()
				seen[m.ID]++
				if m.Attempt != 1 {
					retried++
				}
				return nil
			}),
		})
		assert.Positive(t, w.Stats().Counts.BurstPolls, "a second poll was in flight")

		// Idle: the main loop sleeps and polls; the second one does not.
		waitKind(t, ev, EventAsleep, 3)
		burst := w.Stats().Counts.BurstPolls
		waitKind(t, ev, EventAsleep, 3)
		assert.Equal(t, burst, w.Stats().Counts.BurstPolls, "no second poll while idle")

		mu.Lock()
		defer mu.Unlock()
		assert.Len(t, seen, n)
		for id, k := range seen {
			if k != 1 {
				t.Errorf("%s handled %d times", id, k)
			}
		}
		assert.Zero(t, retried, "no message handled past its first attempt")
	})
}

// TestWorkerBurstPollThrottled: a Throttle paces the polls, and the second
// poll in flight would undo that: a throttled worker keeps to its loops,
// and takes one message per poll, so that the pause paces messages.
func TestWorkerBurstPollThrottled(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		const n = 100         // enough for a burst; one poll per message is slow on a loaded machine
		var most atomic.Int64 // the most messages one poll handed out
		w, _ := handleAll(t, c, q, n, &WorkerConfig{
			Throttle:       Constant(time.Microsecond),
			HandlerThreads: 4,
			Handler:        HandlerFunc(func(context.Context, *Message) error { return nil }),
			Monitor: func(_ context.Context, info MonitorInfo) {
				for m := most.Load(); int64(info.Handled) > m && !most.CompareAndSwap(m, int64(info.Handled)); m = most.Load() {
				}
			},
		})
		assert.Zero(t, w.Stats().Counts.BurstPolls)
		assert.Equal(t, int64(1), most.Load(), "one message per throttled poll")
	})
}

// handleAll starts a worker of cfg on q (startSubscribed), enqueues n
// messages (0..n-1) to q in one call and waits until the worker has
// handled them all.
func handleAll(t *testing.T, c *Client, q string, n int, cfg *WorkerConfig) (*Worker, <-chan Event) {
	t.Helper()
	w, ev := startSubscribed(t, c, q, cfg)
	reqs := make([]EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i}
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: n})
	return w, ev
}

package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// The sleeps of docs/protocol.md §5, from the worker's side: how a worker
// sleeps, and what ends its sleep. The workers here sleep an hour at the
// end of the queue, so that only a wake-up can end a sleep within a test.

// idle is a worker config whose end-of-queue sleep is an hour, and whose
// locks outlast any test.
func idle(cfg WorkerConfig) WorkerConfig {
	cfg.EndOfQueueBackoff = Constant(time.Hour)
	if cfg.LockTime == 0 {
		cfg.LockTime = 5 * time.Minute
	}
	return cfg
}

// pollCounter is a Monitor that counts polls and signals each.
type pollCounter struct {
	n    atomic.Int64
	each chan struct{}
}

func newPollCounter() *pollCounter { return &pollCounter{each: make(chan struct{}, 1000)} }

func (p *pollCounter) monitor(context.Context, MonitorInfo) {
	p.n.Add(1)
	select {
	case p.each <- struct{}{}:
	default:
	}
}

// drain forgets the polls signalled so far.
func (p *pollCounter) drain() {
	for {
		select {
		case <-p.each:
		default:
			return
		}
	}
}

// noPollWithin fails the test if the worker polls within d: a bounded look
// for something that must not happen (it passes however slow the machine).
func (p *pollCounter) noPollWithin(t *testing.T, d time.Duration, why string) {
	t.Helper()
	select {
	case <-p.each:
		t.Fatalf("the worker polled: %s", why)
	case <-time.After(d):
	}
}

// TestSleepStrategyProbedOnce: a client decides once, by a probe before
// its workers' first sleep, whether they share the hub's blocking call
// (real Redis 7) or block on their own connections (miniredis, which
// lacks BLMPOP; a cluster, whose lists are in many slots); a sleep then
// lasts until an enqueue ends it, never cut short by the hub finding out
// mid-sleep that it cannot work (which woke every sleeper at once).
func TestSleepStrategyProbedOnce(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		polls := newPollCounter()
		_, calls, ev := startWorkerEvents(t, c, q, idle(WorkerConfig{Monitor: polls.monitor}), nil)
		waitAsleep(t, ev)
		assert.Equal(t, s.Real != nil, c.hubWorks(), "the hub on a single real Redis only")
		polls.drain()
		polls.noPollWithin(t, 300*time.Millisecond, "nothing ends the sleep but an enqueue")
		enqueue(t, c, q, "wake", &EnqueueOptions{MessageID: "w"})
		assert.Equal(t, "w", next(t, calls).id)
	})
}

// TestIdleWorkerTakesItsRetry: a retry answered on an idle worker is
// handled again once its backoff ends, not when the worker's sleep would
// have ended (here the first attempt's lock expiry, minutes away): the
// outcome, recorded while the worker sleeps, wakes it.
func TestIdleWorkerTakesItsRetry(t *testing.T) {
	for _, backoff := range []time.Duration{10 * time.Millisecond, 0} {
		t.Run(fmt.Sprint(backoff), func(t *testing.T) {
			queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
				c := newClient(t, s, nil)
				q := queuetest.QueueName(t)
				release := make(chan struct{})
				// A second handler thread, so that the loop polls (and
				// sleeps) while the first handling runs.
				_, calls, ev := startWorkerEvents(t, c, q, idle(WorkerConfig{HandlerThreads: 2}), func(_ context.Context, h handling) error {
					if h.attempt == 1 {
						<-release
						return Retry(backoff)
					}
					return nil
				})
				enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "r"})
				next(t, calls)
				// The answer comes once the worker sleeps: the flusher
				// records it.
				waitAsleep(t, ev)
				close(release)
				assert.Equal(t, OutcomeRetried, waitHandled(t, ev, "r", 1))
				assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "r", 2), "handled again once the backoff ended")
			})
		})
	}
}

// TestIdleWorkerTakesAnothersRetry: a retry recorded by one worker wakes
// another worker (of another client, as in another process) asleep on
// the queue, through Redis: the outcome moves the sleep sentinel.
func TestIdleWorkerTakesAnothersRetry(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		first := make(chan string, 2)
		start := func(name string) (*Worker, <-chan Event) {
			w, err := newClient(t, s, nil).NewWorker(q, &WorkerConfig{
				EndOfQueueBackoff: Constant(time.Hour),
				LockTime:          5 * time.Minute,
				Handler: HandlerFunc(func(_ context.Context, m *Message) error {
					if m.Attempt == 1 {
						first <- name
						return Retry(10 * time.Millisecond)
					}
					return nil
				}),
			})
			require.NoError(t, err)
			ev := subscribe(t, w)
			require.NoError(t, w.Start(t.Context()))
			t.Cleanup(func() { _ = w.Close() })
			waitAsleep(t, ev)
			return w, ev
		}
		wa, eva := start("a")
		wb, evb := start("b")
		enqueue(t, newClient(t, s, nil), q, "x", &EnqueueOptions{MessageID: "r"})
		// The worker that took the first attempt stops, its outcome
		// recorded; the other, asleep, takes the second.
		stopping, other := wa, evb
		if <-first == "b" {
			stopping, other = wb, eva
		}
		require.NoError(t, stopping.Stop(context.Background()))
		assert.Equal(t, OutcomeSucceeded, waitHandled(t, other, "r", 2))
	})
}

// TestIdleWorkerTakesDelayed: a delayed message enqueued while a worker
// sleeps until a later one falls due is handled when it falls due: the
// enqueue wakes the worker, which then sleeps until then.
func TestIdleWorkerTakesDelayed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "later", &EnqueueOptions{MessageID: "far", InitialBackoff: time.Hour})
		_, calls, ev := startWorkerEvents(t, c, q, idle(WorkerConfig{}), nil)
		waitAsleep(t, ev)
		enqueue(t, c, q, "soon", &EnqueueOptions{MessageID: "d", InitialBackoff: 50 * time.Millisecond})
		assert.Equal(t, "d", next(t, calls).id)
	})
}

// TestPausedWorkersSleepThroughEnqueues: the workers of a paused queue do
// not poll once per enqueue (they sleep on a list only a resume fills),
// and a resume wakes them at once.
func TestPausedWorkersSleepThroughEnqueues(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		admin := newClient(t, s, nil)
		ctx := context.Background()
		q := queuetest.QueueName(t)
		_, err := admin.Inspector().PauseQueue(ctx, q)
		require.NoError(t, err)
		polls := newPollCounter()
		_, _, ev := startWorkerEvents(t, newClient(t, s, nil), q, idle(WorkerConfig{Monitor: polls.monitor, WorkerThreads: 2}), nil)
		waitAsleep(t, ev)
		waitAsleep(t, ev)
		polls.drain()
		const n = 20
		for i := range n {
			enqueue(t, admin, q, i, &EnqueueOptions{MessageID: fmt.Sprint(i)})
		}
		polls.noPollWithin(t, 300*time.Millisecond, "an enqueue woke a paused worker")
		_, err = admin.Inspector().ResumeQueue(ctx, q)
		require.NoError(t, err)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprint(i)
		}
		waitAllSucceeded(t, ev, ids...)
	})
}

// TestClientClose: Close stops the client's running workers and its sleep
// hub, and leaves no goroutine behind; a worker cannot start after it.
// Not parallel: goleak looks at every goroutine of the process.
func TestClientClose(t *testing.T) {
	for _, s := range []*queuetest.Server{queuetest.MiniServer(t), queuetest.RealServer(t)} {
		ignore := goleak.IgnoreCurrent()
		rdb := redis.NewClient(&redis.Options{Addr: s.RDB.(*redis.Client).Options().Addr})
		c, err := New(rdb, &Config{Logger: testLogger(t)})
		require.NoError(t, err)
		var ws []*Worker
		for i := range 3 {
			w, err := c.NewWorker(fmt.Sprintf("close-%d", i), &WorkerConfig{Handler: nopHandler, EndOfQueueBackoff: Constant(time.Hour)})
			require.NoError(t, err)
			ev := subscribe(t, w, EventAsleep)
			require.NoError(t, w.Start(context.Background()))
			waitAsleep(t, ev)
			ws = append(ws, w)
		}
		require.NoError(t, c.Close())
		for _, w := range ws {
			assert.False(t, w.Info().Running, "stopped by Close")
		}
		assert.False(t, c.hub.Running(), "the hub stopped")
		require.NoError(t, c.Close(), "twice does nothing")
		w, err := c.NewWorker("close-after", &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		assert.ErrorIs(t, w.Start(context.Background()), ErrClientClosed)
		require.NoError(t, rdb.Close())
		goleak.VerifyNone(t, ignore)
	}
}

// TestBurstWakesEverySleeper: docs/protocol.md §5. Workers asleep at the
// end of the queue (for an hour) are each woken by a burst of single
// enqueues that runs mids-ready past protocol.WakeBacklog, beyond which
// an enqueue wakes nobody: every worker takes a message (a handling waits
// until one runs on every worker, so that no worker can drain the burst
// alone), and every message is handled, long before a sleep would end.
func TestBurstWakesEverySleeper(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		const fleet = 4
		n := protocol.WakeBacklog + fleet
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		var started, handled atomic.Int64
		everyWorker := make(chan struct{}) // closed once fleet handlings started
		done := make(chan struct{})        // closed once n handlings succeeded
		h := HandlerFunc(func(ctx context.Context, m *Message) error {
			// One handler thread a worker: fleet handlings waiting here
			// at once run on fleet workers.
			if started.Add(1) == fleet {
				close(everyWorker)
			}
			select {
			case <-everyWorker:
			case <-ctx.Done():
				return ctx.Err()
			}
			if handled.Add(1) == int64(n) {
				close(done)
			}
			return nil
		})
		var asleep []<-chan Event
		for range fleet {
			cfg := idle(WorkerConfig{Handler: h})
			w, err := c.NewWorker(q, &cfg)
			require.NoError(t, err)
			asleep = append(asleep, subscribe(t, w, EventAsleep))
			require.NoError(t, w.Start(t.Context()))
			t.Cleanup(func() { _ = w.Close() })
		}
		for _, ch := range asleep {
			waitAsleep(t, ch)
		}
		for i := range n {
			enqueue(t, c, q, "x", &EnqueueOptions{MessageID: fmt.Sprint("m", i)})
		}
		select {
		case <-done:
		case <-time.After(eventTimeout):
			t.Fatalf("%d of %d messages handled, %d handlings started (%d workers, asleep for an hour but for a wake)",
				handled.Load(), n, started.Load(), fleet)
		}
	})
}

package mq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handling is what a test handler saw of one call.
type handling struct {
	id      string
	attempt int
	value   string
}

// startWorker starts a worker whose handler reports every call on the
// returned channel, then answers with answer(call). It is closed when the
// test ends.
func startWorker(t *testing.T, c *Client, q string, cfg WorkerConfig, answer func(ctx context.Context, h handling) error) (*Worker, <-chan handling) {
	t.Helper()
	calls := make(chan handling, 1000)
	cfg.Handler = HandlerFunc(func(ctx context.Context, m *Message) error {
		var v string
		_ = m.Decode(&v)
		h := handling{id: m.ID, attempt: m.Attempt, value: v}
		calls <- h
		if answer == nil {
			return nil
		}
		return answer(ctx, h)
	})
	if cfg.EndOfQueueBackoff == nil {
		cfg.EndOfQueueBackoff = Constant(20 * time.Millisecond)
	}
	w, err := c.StartWorker(t.Context(), q, &cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w, calls
}

// next waits for the next handler call.
func next(t *testing.T, calls <-chan handling) handling {
	t.Helper()
	select {
	case h := <-calls:
		return h
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a handler call")
		return handling{}
	}
}

func statusOf(t *testing.T, c *Client, q, id string) Status {
	t.Helper()
	st, err := c.MessageStatus(context.Background(), q, id)
	require.NoError(t, err)
	return st
}

func waitStatus(t *testing.T, c *Client, q, id string, want Status) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to be %s", id, want), func() bool { return statusOf(t, c, q, id) == want })
}

func enqueue(t *testing.T, c *Client, q string, msg any, opts *EnqueueOptions) EnqueueResult {
	t.Helper()
	res, err := c.Enqueue(context.Background(), q, msg, opts)
	require.NoError(t, err)
	return res
}

func TestWorkerSuccessThenGC(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "hello", &EnqueueOptions{MessageID: "a"})
		w, calls := startWorker(t, c, q, WorkerConfig{}, nil)
		h := next(t, calls)
		assert.Equal(t, handling{id: "a", attempt: 1, value: "hello"}, h)
		// Done, then collected on a later lap.
		waitStatus(t, c, q, "a", StatusNone)
		assert.Equal(t, int64(1), w.Stats().Counts.Succeeded)
		// Counted once the poll's answer is back, just after the status
		// changed.
		waitFor(t, "the collection counted", func() bool { return w.Stats().Counts.Skips.DidGC > 0 })
	})
}

func TestWorkerErrorAndPanic(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "fail", &EnqueueOptions{MessageID: "e"})
		enqueue(t, c, q, "panic", &EnqueueOptions{MessageID: "p"})
		w, calls := startWorker(t, c, q, WorkerConfig{}, func(ctx context.Context, h handling) error {
			switch h.value {
			case "fail":
				return errors.New("boom")
			case "panic":
				panic("handler bug")
			}
			return nil
		})
		got := map[string]bool{}
		for range 2 {
			got[next(t, calls).id] = true
		}
		assert.Equal(t, map[string]bool{"e": true, "p": true}, got)
		waitFor(t, "both errors counted", func() bool { return w.Stats().Counts.Failed == 2 })
		// The worker survives and handles more.
		enqueue(t, c, q, "fine", &EnqueueOptions{MessageID: "f"})
		assert.Equal(t, "f", next(t, calls).id)
		waitFor(t, "success counted", func() bool { return w.Stats().Counts.Succeeded == 1 })
		for _, id := range []string{"e", "p"} {
			// Counted when the handler returned; recorded just after.
			waitFor(t, id+": an error outcome is done", func() bool {
				st := statusOf(t, c, q, id)
				return st == StatusDoneAwaitingGC || st == StatusNone
			})
		}
	})
}

func TestWorkerSuccessWithDedupeBackoff(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d"})
		w, calls := startWorker(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			return SucceedWithBackoff(time.Hour)
		})
		next(t, calls)
		waitStatus(t, c, q, "d", StatusDoneWithBackoff)
		res := enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d"})
		assert.ErrorIs(t, res.Refused, ErrBackoff)
		st := w.Stats().Counts
		assert.Equal(t, int64(1), st.Succeeded)
		assert.Equal(t, int64(1), st.BackoffsSet)
	})
}

func TestWorkerRetryWithBackoff(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "r"})
		w, calls := startWorker(t, c, q, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.attempt == 1 {
				return Retry(400 * time.Millisecond)
			}
			return nil
		})
		assert.Equal(t, 1, next(t, calls).attempt)
		waitStatus(t, c, q, "r", StatusQueuedWithBackoff)
		assert.Equal(t, 2, next(t, calls).attempt, "handled again after the backoff, with the next attempt")
		st := w.Stats().Counts
		assert.Equal(t, int64(1), st.Retried)
		assert.Equal(t, int64(1), st.BackoffsSet)
	})
}

func TestWorkerLockTimeout(t *testing.T) {
	for _, perMessage := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-message=%v", perMessage), func(t *testing.T) {
			onEachServer(t, func(t *testing.T, s *server) {
				c := s.client(t, nil)
				q := queueName(t)
				cfg := WorkerConfig{HandlerThreads: 2, LockTime: 300 * time.Millisecond}
				opts := &EnqueueOptions{MessageID: "slow"}
				if perMessage {
					cfg.LockTime = time.Hour
					opts.LockTime = 300 * time.Millisecond
				}
				release := make(chan struct{})
				w, calls := startWorker(t, c, q, cfg, func(ctx context.Context, h handling) error {
					if h.attempt == 1 {
						<-release // stalls past its lock
					}
					return nil
				})
				enqueue(t, c, q, "x", opts)
				assert.Equal(t, 1, next(t, calls).attempt)
				assert.Equal(t, 2, next(t, calls).attempt, "handed out again once the lock expired")
				close(release)
				waitFor(t, "the late outcome to be fenced", func() bool { return w.Stats().Counts.LockLost == 1 })
				waitFor(t, "the second handling's outcome", func() bool { return w.Stats().Counts.Succeeded == 1 })
				// The fenced handling counts as lost only, not as a success too.
				assert.Equal(t, int64(1), w.Stats().Counts.Succeeded)
			})
		})
	}
}

func TestWorkerRequeue(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		release := make(chan struct{})
		_, calls := startWorker(t, c, q, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.value == "v1" {
				<-release
			}
			return nil
		})
		enqueue(t, c, q, "v1", &EnqueueOptions{MessageID: "rq"})
		assert.Equal(t, "v1", next(t, calls).value)
		res := enqueue(t, c, q, "v2", &EnqueueOptions{MessageID: "rq", CanRequeue: true})
		assert.Equal(t, ActionAdded, res.Action)
		assert.Equal(t, StatusLockedWithRequeue, statusOf(t, c, q, "rq"))
		close(release)
		h := next(t, calls)
		assert.Equal(t, handling{id: "rq", attempt: 1, value: "v2"}, h, "handled again with the new content, attempts reset")

		// Requeue during done-with-backoff: handled after the backoff.
		q2 := q + ":2"
		_, calls2 := startWorker(t, c, q2, WorkerConfig{}, func(_ context.Context, h handling) error {
			if h.value == "v1" {
				return SucceedWithBackoff(500 * time.Millisecond)
			}
			return nil
		})
		enqueue(t, c, q2, "v1", &EnqueueOptions{MessageID: "rq"})
		assert.Equal(t, "v1", next(t, calls2).value)
		waitStatus(t, c, q2, "rq", StatusDoneWithBackoff)
		res = enqueue(t, c, q2, "v2", &EnqueueOptions{MessageID: "rq", CanRequeue: true})
		assert.Equal(t, ActionAdded, res.Action)
		assert.Equal(t, StatusDoneWithRequeue, statusOf(t, c, q2, "rq"))
		assert.Equal(t, "v2", next(t, calls2).value)
	})
}

// TestWorkerFencing: docs/protocol.md §7. A handler stalls past its lock, a
// second worker takes the message and completes it, then the first
// completes late: the late outcome changes nothing.
func TestWorkerFencing(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: mid, LockTime: 300 * time.Millisecond})
		releaseA := make(chan struct{})
		a, callsA := startWorker(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			<-releaseA
			return Retry(time.Hour) // would put it back in the queue with a backoff
		})
		require.Equal(t, 1, next(t, callsA).attempt)

		releaseB := make(chan struct{})
		b, callsB := startWorker(t, c, q, WorkerConfig{}, func(context.Context, handling) error {
			<-releaseB
			return nil
		})
		require.Equal(t, 2, next(t, callsB).attempt, "B takes it once A's lock expired")
		ctx := context.Background()
		// B holds a fresh lock: capture the state B's handling wrote.
		lockB := s.hget(t, q, keys.Locks)
		require.NotEmpty(t, lockB)
		close(releaseA)
		waitFor(t, "A's late outcome to be fenced", func() bool { return a.Stats().Counts.LockLost == 1 })
		assert.Equal(t, lockB, s.hget(t, q, keys.Locks), "B's lock unchanged")
		assert.Equal(t, "", s.hget(t, q, keys.Backoffs), "no backoff from A")
		assert.False(t, s.isMember(t, q, keys.Done), "not done by A")
		assert.Equal(t, int64(2), s.hgetInt(t, q, keys.NAttempts))

		close(releaseB)
		// The success is counted when the handler returns, and recorded by
		// the next poll or the flusher just after: wait for the record.
		waitFor(t, "B's outcome to be recorded", func() bool {
			st, err := c.MessageStatus(ctx, q, mid)
			require.NoError(t, err)
			return st == StatusDoneAwaitingGC || st == StatusNone
		})
		assert.Equal(t, int64(1), b.Stats().Counts.Succeeded)
	})
}

func TestWorkerRenewal(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		var handled atomic.Int64
		var extendErr error
		var worker atomic.Pointer[Worker]
		// The lock time leaves a busy machine room to renew in time; the
		// work itself lasts until the worker renewed the lock four times,
		// so over a lock time and a third.
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			LockTime:          time.Second,
			RenewLocks:        true,
			HandlerThreads:    2,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				handled.Add(1)
				extendErr = m.ExtendLock(ctx)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for worker.Load().Stats().Counts.LocksRenewed < 4 {
					select {
					case <-tick.C:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}),
		})
		worker.Store(w)
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		enqueue(t, c, q, "long", &EnqueueOptions{MessageID: "long"})
		waitFor(t, "the outcome", func() bool { return w.Stats().Counts.Succeeded == 1 })
		assert.Equal(t, int64(1), handled.Load(), "handled once")
		assert.NoError(t, extendErr)
		assert.Positive(t, w.Stats().Counts.LocksRenewed)
		assert.Zero(t, w.Stats().Counts.LockLost)
	})
}

func TestWorkerStop(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		ctx := context.Background()

		// Stop before start, twice, and Close: all fine.
		idle, err := c.NewWorker(queueName(t)+":idle", &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		require.NoError(t, idle.Stop(ctx))
		require.NoError(t, idle.Stop(ctx))
		require.NoError(t, idle.Close())
		assert.False(t, idle.Info().Running)

		// Without a deadline: Stop waits for the handler and its outcome.
		q := queueName(t)
		started := make(chan struct{})
		release := make(chan struct{})
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				close(started)
				<-release
				return nil
			}),
		})
		require.NoError(t, err)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "s"})
		<-started
		stopped := make(chan error)
		go func() { stopped <- w.Stop(ctx) }()
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned (%v) while a handler ran", err)
		case <-time.After(100 * time.Millisecond): // Stop is still waiting: the point of the test
		}
		close(release)
		require.NoError(t, <-stopped)
		assert.Equal(t, StatusDoneAwaitingGC, statusOf(t, c, q, "s"), "the outcome was recorded before Stop returned")
		require.NoError(t, w.Stop(ctx), "twice")

		// With a deadline: the handler's context is cancelled, Stop answers
		// the deadline, and the message stays locked for a later worker.
		q2 := queueName(t) + ":2"
		started2 := make(chan struct{})
		sawCancel := make(chan struct{})
		w2, err := c.StartWorker(t.Context(), q2, &WorkerConfig{
			LockTime:          500 * time.Millisecond,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				close(started2)
				<-ctx.Done()
				close(sawCancel)
				return ctx.Err()
			}),
		})
		require.NoError(t, err)
		enqueue(t, c, q2, "x", &EnqueueOptions{MessageID: "s2"})
		<-started2
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, w2.Stop(dctx), context.DeadlineExceeded)
		<-sawCancel
		waitFor(t, "the handling to be abandoned", func() bool { return w2.Stats().Counts.Abandoned == 1 })
		assert.Contains(t, []Status{StatusLocked, StatusQueued}, statusOf(t, c, q2, "s2"), "not done")
		_, calls := startWorker(t, c, q2, WorkerConfig{}, nil)
		h := next(t, calls)
		assert.Equal(t, handling{id: "s2", attempt: 2, value: "x"}, h, "handled again after the lock expired")
	})
}

// TestWorkerWakeUp: an idle worker asleep at the end of the queue handles a
// new message before its sleep would have ended.
func TestWorkerWakeUp(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		w, calls := startWorker(t, c, q, WorkerConfig{EndOfQueueBackoff: Constant(time.Minute)}, nil)
		waitFor(t, "the worker to sleep", func() bool { return w.Stats().Counts.EndOfQueueSleeps >= 1 })
		enqueue(t, c, q, "wake", &EnqueueOptions{MessageID: "w"})
		select {
		case h := <-calls:
			assert.Equal(t, "w", h.id)
		case <-time.After(40 * time.Second): // the sleep is at least 48s (a minute less 20%)
			t.Fatal("the enqueue did not wake the sleeping worker")
		}
		// Handled within the first sleep: a second one could only start after
		// 48 s. (Counting sleeps here would race with the worker's next poll,
		// which may already have found the queue empty again.)
		// The sleeper was woken by the sentinel (created in isleep-a by the
		// enqueue, moved to isleep-b by the worker), not by its once-a-second
		// look at mids-ready.
		assert.Equal(t, []string{"_"}, s.list(t, q, keys.ISleepB), "woken through the sleep lists")
	})
}

// TestWorkersShareQueue: two workers on one queue handle every message
// exactly once when no lock expires.
func TestWorkersShareQueue(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		var mu sync.Mutex
		counts := map[string]int{}
		var total atomic.Int64
		for range 2 {
			w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
				HandlerThreads:    4,
				WorkerThreads:     2,
				EndOfQueueBackoff: Constant(20 * time.Millisecond),
				Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
					mu.Lock()
					counts[m.ID]++
					mu.Unlock()
					total.Add(1)
					return nil
				}),
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = w.Close() })
		}
		reqs := make([]EnqueueRequest, 200)
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprint(i)}}
		}
		_, err := c.EnqueueMany(context.Background(), q, reqs...)
		require.NoError(t, err)
		waitFor(t, "every message", func() bool { return total.Load() >= 200 })
		waitFor(t, "the queue to empty", func() bool {
			n, err := s.rdb.HLen(context.Background(), s.key(q, keys.Messages)).Result()
			return err == nil && n == 0
		})
		mu.Lock()
		defer mu.Unlock()
		assert.Len(t, counts, 200)
		for id, n := range counts {
			assert.Equal(t, 1, n, "message %s", id)
		}
	})
}

// TestWorkerProcesses: two worker processes on one queue (real Redis).
//
// Both processes take part by construction: each child's handlers hold
// their first message, and wait, until the parent has seen both children
// hold one (a line "started" from each), then the parent lets both go on
// (a line on their stdin). A child cannot take more than a few messages
// before then, so the other always finds some left.
func TestWorkerProcesses(t *testing.T) {
	t.Parallel()
	s := newRealServer(t)
	c := s.client(t, nil)
	q := queueName(t)
	outs := make([]*strings.Builder, 2)
	var stdins []io.WriteCloser
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range outs {
		outs[i] = &strings.Builder{}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$")
		cmd.Env = append(os.Environ(), "MQ_HELPER_REDIS="+s.real.Addr, "MQ_HELPER_QUEUE="+q)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdins = append(stdins, stdin)
		require.NoError(t, cmd.Start())
		wg.Add(1)
		go func(out *strings.Builder) {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				out.WriteString(sc.Text() + "\n")
				mu.Unlock()
			}
		}(outs[i])
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	reqs := make([]EnqueueRequest, 200)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("id-%d", i)}}
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	started := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(outs[i].String(), "started\n")
	}
	waitFor(t, "both processes to hold a message", func() bool { return started(0) && started(1) })
	for _, in := range stdins {
		_, err := io.WriteString(in, "go\n")
		require.NoError(t, err)
	}
	counts := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]int{}
		for _, o := range outs {
			for _, l := range strings.Fields(o.String()) {
				if id, ok := strings.CutPrefix(l, "handled:"); ok {
					m[id]++
				}
			}
		}
		return m
	}
	waitFor(t, "both processes to handle all", func() bool { return len(counts()) == 200 })
	waitFor(t, "the outcomes", func() bool {
		n, err := s.rdb.SCard(context.Background(), s.key(q, keys.Done)).Result()
		size, _ := s.rdb.HLen(context.Background(), s.key(q, keys.Messages)).Result()
		return err == nil && (n == 200 || size == 0)
	})
	for id, n := range counts() {
		assert.Equal(t, 1, n, "message %s", id)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, o := range outs {
		assert.Contains(t, o.String(), "handled:", "process %d handled messages", i)
	}
}

// helperGate holds a TestHelperWorkerProcess's handlers, as
// TestWorkerProcesses describes: the first to arrive says "started", and all
// wait for a line on stdin.
type helperGate struct {
	once, read sync.Once
	open       chan struct{}
}

func (g *helperGate) wait() {
	g.once.Do(func() { fmt.Println("started") })
	g.read.Do(func() {
		go func() {
			_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
			close(g.open)
		}()
	})
	<-g.open
}

// TestHelperWorkerProcess is the child of TestWorkerProcesses.
func TestHelperWorkerProcess(t *testing.T) {
	addr := os.Getenv("MQ_HELPER_REDIS")
	if addr == "" {
		t.Skip("run by TestWorkerProcesses")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	var mu sync.Mutex
	gate := &helperGate{open: make(chan struct{})}
	w, err := c.StartWorker(t.Context(), os.Getenv("MQ_HELPER_QUEUE"), &WorkerConfig{
		HandlerThreads:    4,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			gate.wait()
			mu.Lock()
			fmt.Printf("handled:%s\n", m.ID)
			mu.Unlock()
			return nil
		}),
	})
	require.NoError(t, err)
	defer w.Close()
	select {} // until killed
}

// TestWorkerSurvivesRedisRestart: Redis stopped for seconds under a running
// worker (real server with persistence); the worker resumes by itself and
// nothing is lost.
func TestWorkerSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	s := newRealServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := s.client(t, nil)
	q := queueName(t)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			mu.Lock()
			seen[m.ID] = true
			mu.Unlock()
			return nil
		}),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	enqueue(t, c, q, "before", &EnqueueOptions{MessageID: "before"})
	waitFor(t, "the first message", func() bool { mu.Lock(); defer mu.Unlock(); return seen["before"] })

	s.real.Kill(t)
	waitFor(t, "the worker to notice", func() bool { return w.Stats().Counts.PollErrors > 0 })
	time.Sleep(3 * time.Second) // the outage itself
	s.real.Restart(t)

	for i := range 20 {
		var err error
		for range 50 { // the client reconnects on its own; an enqueue may meet the old connection
			if _, err = c.Enqueue(ctx, q, i, &EnqueueOptions{MessageID: fmt.Sprint(i)}); err == nil {
				break
			}
		}
		require.NoError(t, err)
	}
	waitFor(t, "every message after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 21
	})
	assert.True(t, w.Info().Running)
}

// TestWorkerUndecodable: a message the codec cannot decode is an error
// outcome with a clear reason, never a crash; it stays inspectable until
// collected.
func TestWorkerUndecodable(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, Raw("\xc1"), &EnqueueOptions{MessageID: "bad"})
		content, err := c.QueueContent(context.Background(), q)
		require.NoError(t, err)
		require.Len(t, content, 1)
		assert.ErrorIs(t, content[0].DecodeErr, ErrDecode)

		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(_ context.Context, m *Message) error {
				_, err := m.Value()
				return err
			}),
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		waitFor(t, "the error outcome", func() bool { return w.Stats().Counts.Failed == 1 })
		enqueue(t, c, q, "fine", nil)
		waitFor(t, "the next message", func() bool { return w.Stats().Counts.Succeeded == 1 })
	})
}

// prefetchSetup starts a worker whose handler holds the message "block"
// until release is closed, warms it up with quick handlings (which turn
// prefetching on), then enqueues "block" and n more messages m0..m(n-1),
// in one call, with opts.
func prefetchSetup(t *testing.T, c *Client, q string, n int, opts *EnqueueOptions) (*Worker, <-chan handling, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	w, calls := startWorker(t, c, q, WorkerConfig{}, func(ctx context.Context, h handling) error {
		if h.value == "block" {
			<-release
		}
		return nil
	})
	for i := range 10 {
		enqueue(t, c, q, fmt.Sprint("warm", i), nil)
		next(t, calls)
	}
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
	return w, calls, release
}

// TestWorkerPrefetchStop: messages prefetched behind a busy handler are
// given back when the worker stops: unlocked, their attempt uncounted, and
// handled once by the next worker.
func TestWorkerPrefetchStop(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		ctx := context.Background()
		const count = defaultPrefetch + 14
		w, _, release := prefetchSetup(t, c, q, count, nil)

		// One handler busy, defaultPrefetch more taken and waiting.
		waitFor(t, "the prefetch to fill", func() bool {
			st, err := c.QueueCounts(ctx, q)
			require.NoError(t, err)
			return st.Locked == 1+defaultPrefetch
		})
		stopped := make(chan error, 1)
		go func() { stopped <- w.Stop(ctx) }()
		waitFor(t, "the prefetched messages to be given back", func() bool {
			return w.Stats().Counts.Released == defaultPrefetch
		})
		close(release)
		require.NoError(t, <-stopped)

		assert.Equal(t, StatusQueued, statusOf(t, c, q, "m0"))
		n, err := s.rdb.HExists(ctx, s.key(q, keys.NAttempts), "m0").Result()
		require.NoError(t, err)
		assert.False(t, n, "attempt uncounted")
		assert.Equal(t, StatusDoneAwaitingGC, statusOf(t, c, q, "block"), "block's outcome recorded")

		_, calls := startWorker(t, c, q, WorkerConfig{}, nil)
		seen := map[string]int{}
		for range count {
			h := next(t, calls)
			seen[h.value]++
			assert.Equal(t, 1, h.attempt, h.value)
		}
		assert.Len(t, seen, count, "each message handled once")
	})
}

// TestWorkerPrefetchStale: a prefetched message that waited for a handler
// longer than a quarter of its lock time is given back, not started, and
// handled later; no message is handled twice.
func TestWorkerPrefetchStale(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		w, calls, release := prefetchSetup(t, c, q, 5, &EnqueueOptions{LockTime: 200 * time.Millisecond})

		// Hold "block" until the prefetched messages' locks have run out.
		waitFor(t, "m0's lock to expire", func() bool { return statusOf(t, c, q, "m0") == StatusQueued })
		close(release)
		seen := map[string]int{}
		for range 5 {
			seen[next(t, calls).value]++
		}
		assert.Len(t, seen, 5, "each message handled once")
		assert.Positive(t, w.Stats().Counts.Released, "stale messages given back")
		select {
		case h := <-calls:
			t.Fatalf("handled again: %+v", h)
		default:
		}
	})
}

// TestWorkerPrefetchOutcomeNotHeld: while the loop waits for room to take
// many messages at once, an outcome handed in meanwhile is still recorded
// promptly, not held until enough other handlings finish (which, with slow
// handlings, could outlast the message's lock).
func TestWorkerPrefetchOutcomeNotHeld(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		gate := make(chan struct{})
		_, calls := startWorker(t, c, q, WorkerConfig{}, func(ctx context.Context, h handling) error {
			if strings.HasPrefix(h.value, "slow") {
				select {
				case <-gate:
				case <-ctx.Done():
				}
			}
			return nil
		})
		t.Cleanup(func() { close(gate) })
		for i := range 10 {
			enqueue(t, c, q, fmt.Sprint("warm", i), nil)
			next(t, calls)
		}
		var reqs []EnqueueRequest
		for i := range defaultPrefetch + 4 {
			id := fmt.Sprint("slow", i)
			reqs = append(reqs, EnqueueRequest{Message: id, Options: &EnqueueOptions{MessageID: id}})
		}
		_, err := c.EnqueueMany(context.Background(), q, reqs...)
		require.NoError(t, err)
		require.Equal(t, "slow0", next(t, calls).value)
		waitFor(t, "the prefetch to fill", func() bool {
			st, err := c.QueueCounts(context.Background(), q)
			require.NoError(t, err)
			return st.Locked == 1+defaultPrefetch
		})

		gate <- struct{}{} // slow0 finishes; slow1 starts and holds
		require.Equal(t, "slow1", next(t, calls).value)
		waitFor(t, "slow0's outcome to be recorded", func() bool {
			st := statusOf(t, c, q, "slow0")
			return st == StatusDoneAwaitingGC || st == StatusNone
		})
	})
}

// TestWorkerBurstPoll: while the queue is busy, a prefetching worker keeps
// a second poll in flight; every message is still handled once, at its
// first attempt, and once the queue is empty the second poll stops.
func TestWorkerBurstPoll(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		const n = 3000
		var mu sync.Mutex
		seen := map[string]int{}
		retried := 0
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
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
		require.NoError(t, err)
		handleAll(t, c, w, q, n)
		assert.Positive(t, w.Stats().Counts.BurstPolls, "a second poll was in flight")

		// Idle: the main loop sleeps and polls; the second one does not.
		sleeps := func() int64 { return w.Stats().Counts.EndOfQueueSleeps }
		first := sleeps()
		waitFor(t, "the worker to idle", func() bool { return sleeps() >= first+3 })
		burst := w.Stats().Counts.BurstPolls
		first = sleeps()
		waitFor(t, "three more idle polls", func() bool { return sleeps() >= first+3 })
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
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		const n = 500
		var most atomic.Int64 // the most messages one poll handed out
		w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
			Throttle:       Constant(time.Microsecond),
			HandlerThreads: 4,
			Handler:        HandlerFunc(func(context.Context, *Message) error { return nil }),
			Monitor: func(_ context.Context, info MonitorInfo) {
				for m := most.Load(); int64(info.Handled) > m && !most.CompareAndSwap(m, int64(info.Handled)); m = most.Load() {
				}
			},
		})
		require.NoError(t, err)
		handleAll(t, c, w, q, n)
		assert.Zero(t, w.Stats().Counts.BurstPolls)
		assert.Equal(t, int64(1), most.Load(), "one message per throttled poll")
	})
}

// handleAll enqueues n messages (0..n-1) to q in one call and waits until
// w has handled them all; w is closed when the test ends.
func handleAll(t *testing.T, c *Client, w *Worker, q string, n int64) {
	t.Helper()
	t.Cleanup(func() { _ = w.Close() })
	reqs := make([]EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i}
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	waitFor(t, "every message handled", func() bool { return w.Stats().Counts.Succeeded == n })
}

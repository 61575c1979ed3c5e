package mq

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file check that the library keeps its deadlines,
// whatever the Redis client's own timeouts and whatever Redis does.

// TestCallsKeepTheirDeadline: with a Redis that never answers and a client
// that would wait a minute for each reply, every call returns by its
// context's deadline.
func TestCallsKeepTheirDeadline(t *testing.T) {
	t.Parallel()
	// go-redis keeps the deadline itself with ContextTimeoutEnabled; without
	// it, the library does.
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("ContextTimeoutEnabled=%v", own), func(t *testing.T) {
			t.Parallel()
			testCallsKeepTheirDeadline(t, own)
		})
	}
}

func testCallsKeepTheirDeadline(t *testing.T, contextTimeout bool) {
	rdb := redis.NewClient(&redis.Options{Addr: silentServer(t), ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		MaxRetries: -1, ContextTimeoutEnabled: contextTimeout})
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	require.Equal(t, contextTimeout, c.keepsDeadlines)
	calls := map[string]func(ctx context.Context) error{
		"Enqueue": func(ctx context.Context) error {
			_, err := c.Enqueue(ctx, "q", "x", nil)
			return err
		},
		"EnqueueMany": func(ctx context.Context) error {
			_, err := c.EnqueueMany(ctx, "q", EnqueueRequest{Message: "x"})
			return err
		},
		"MessageStatus": func(ctx context.Context) error {
			_, err := c.Inspector().MessageStatus(ctx, "q", "m")
			return err
		},
		"QueueCounts": func(ctx context.Context) error {
			_, err := c.Inspector().QueueCounts(ctx, "q")
			return err
		},
		"QueueContent": func(ctx context.Context) error {
			_, err := c.Inspector().QueueContent(ctx, "q")
			return err
		},
		"QueueNames": func(ctx context.Context) error {
			_, err := c.Inspector().QueueNames(ctx, "*")
			return err
		},
		"DeleteMessage": func(ctx context.Context) error {
			_, err := c.Inspector().DeleteMessage(ctx, "q", "m")
			return err
		},
		"PauseQueue": func(ctx context.Context) error {
			_, err := c.Inspector().PauseQueue(ctx, "q")
			return err
		},
		"ClearQueues": func(ctx context.Context) error {
			_, err := c.Inspector().ClearQueues(ctx, "q")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := call(ctx)
			took := time.Since(start)
			if contextTimeout {
				require.Error(t, err) // go-redis's own: a read timeout at the deadline
			} else {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			// Far below the client's minute: the deadline, not a timeout,
			// ended the call (a loaded machine may add a little).
			assert.Less(t, took, 10*time.Second)
		})
	}
	t.Cleanup(func() { rdb.Close() })
}

// serverPID is the process id of the redis-server rdb talks to.
func serverPID(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	info, err := rdb.InfoMap(context.Background(), "server").Result()
	require.NoError(t, err)
	pid, err := strconv.Atoi(info["Server"]["process_id"])
	require.NoError(t, err)
	return pid
}

// TestHandlerCancelledWhenLockRunsOut: Redis freezes while a handler runs
// with lock renewal; the renewals get no answer, and the handler's context
// ends, with ErrLockExpired, no later than the lock Redis holds runs out.
func TestHandlerCancelledWhenLockRunsOut(t *testing.T) {
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	started := make(chan struct{})
	type end struct {
		at    time.Time
		cause error
	}
	ended := make(chan end, 1)
	_, ev := startSubscribed(t, c, q, &WorkerConfig{
		LockTime: time.Second,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if m.Attempt > 1 {
				return nil
			}
			close(started)
			<-ctx.Done()
			ended <- end{time.Now(), context.Cause(ctx)}
			return ctx.Err()
		}),
	})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: mid})
	<-started

	// Let a renewal through, then freeze Redis.
	waitKind(t, ev, EventLockRenewed, 1)
	pid := serverPID(t, s.RDB)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
		}
	}
	t.Cleanup(resume)
	var e end
	select {
	case e = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler's context did not end within 30 s of Redis freezing")
	}
	resume()

	assert.ErrorIs(t, e.cause, ErrLockExpired)
	// The server's clock is this machine's: compare the cancellation with
	// the lock Redis holds, which the frozen Redis could not renew (read
	// through the protocol: the Inspector shows no lock that ran out).
	_, reads, err := protocol.ReadMessages(context.Background(), s.RDB, s.Keys(q), "", []string{mid})
	require.NoError(t, err)
	lockedUntil := reads[0].LockedUntil
	assert.LessOrEqual(t, e.at.UnixMilli(), lockedUntil+100,
		"the handler was cancelled %d ms after its lock ran out", e.at.UnixMilli()-lockedUntil)
}

// TestWorkerNoticesRedisBack: after many failed polls, a worker polls again
// within about a second of Redis coming back.
func TestWorkerNoticesRedisBack(t *testing.T) {
	s := queuetest.RealServer(t)
	// A client that fails fast while Redis is away: one dial, no retries.
	rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	q := queuetest.QueueName(t)
	_, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{}, nil)
	enqueue(t, c, q, "before", nil)
	next(t, calls)

	s.Real.Kill(t)
	waitKind(t, ev, EventPollFailed, 6)
	s.Real.Restart(t)
	back := time.Now()
	// A producer of its own: the worker's pool may still be redialling.
	producer, err := New(s.Real.Client(t), &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = producer.Enqueue(context.Background(), q, "after", nil)
	require.NoError(t, err)
	select {
	case h := <-calls:
		assert.Equal(t, "after", h.value)
		// Carmine's backoff would wait 6 to 13 s after six errors.
		assert.Less(t, time.Since(back), 4*time.Second, "the worker noticed Redis back")
	case <-time.After(30 * time.Second):
		t.Fatal("not handled within 30 s of Redis coming back")
	}
}

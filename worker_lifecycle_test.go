package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file hold the worker to http.Server's lifecycle:
// made stopped, started once, stopped by a deadline whatever Redis does.

type ctxKey struct{}

// TestWorkerStartsOnlyWhenAsked: NewWorker starts nothing, Start runs the
// worker with its ctx's values, a second Start is an error, and a stopped
// worker starts again.
func TestWorkerStartsOnlyWhenAsked(t *testing.T) {
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	seen := make(chan any, 10)
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			seen <- ctx.Value(ctxKey{})
			return nil
		}),
	})
	require.NoError(t, err)
	assert.False(t, w.Info().Running, "NewWorker starts nothing")
	stats, err := s.RDB.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	assert.NotContains(t, stats, "cmdstat_evalsha", "no poll was made")

	ctx := context.WithValue(context.Background(), ctxKey{}, "first")
	require.NoError(t, w.Start(ctx))
	assert.True(t, w.Info().Running)
	require.ErrorIs(t, w.Start(ctx), ErrWorkerRunning)
	enqueue(t, c, q, "x", nil)
	assert.Equal(t, "first", <-seen, "the handler's ctx carries Start's values")

	require.NoError(t, w.Stop(context.Background()))
	assert.False(t, w.Info().Running)
	require.NoError(t, w.Stop(context.Background()), "twice")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, w.Start(cancelled), context.Canceled, "a done ctx starts nothing")
	assert.False(t, w.Info().Running)

	require.NoError(t, w.Start(context.WithValue(context.Background(), ctxKey{}, "second")))
	enqueue(t, c, q, "y", nil)
	assert.Equal(t, "second", <-seen, "a stopped worker starts again")
	require.NoError(t, w.Close())
}

// TestWorkerStopKeepsItsDeadlineWhenRedisHangs: with Redis frozen while a
// handler runs, and a client that would wait a minute for each reply, Stop
// returns by its deadline, and Close within its grace of a second; each
// has counted the handling it abandoned by then. The abandoned handling's
// outcome is not recorded: the message stays locked, to be handled again
// when its lock expires.
func TestWorkerStopKeepsItsDeadlineWhenRedisHangs(t *testing.T) {
	stops := map[string]func(w *Worker) error{
		"Stop": func(w *Worker) error {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			err := w.Stop(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("Stop answered %v, want the deadline", err)
			}
			return nil
		},
		"Close": (*Worker).Close,
	}
	for name, stop := range stops {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testStopWithRedisHung(t, stop)
		})
	}
}

func testStopWithRedisHung(t *testing.T, stop func(*Worker) error) {
	s := queuetest.RealServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	q := queuetest.QueueName(t)
	started, release := make(chan struct{}), make(chan struct{})
	// Two handler threads, so that the polling loop goes on polling, and
	// is in a call to Redis (a poll or a short sleep) when Redis freezes.
	w, err := c.StartWorker(t.Context(), q, &WorkerConfig{
		HandlerThreads:    2,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			close(started)
			<-release // ignores ctx: a handler that does not give up
			return nil
		}),
	})
	require.NoError(t, err)
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "m"})
	<-started

	s.Real.Pause(t)
	start := time.Now()
	require.NoError(t, stop(w))
	took := time.Since(start)
	// Far below the client's minute: the deadline ended the stop.
	assert.Less(t, took, 20*time.Second)
	assert.Equal(t, int64(1), w.Stats().Counts.Abandoned, "counted by the time the stop returned")
	assert.False(t, w.Info().Running)

	s.Real.Resume(t)
	close(release)
	// Start again waits for the last run's goroutines: the handler has
	// returned, and its outcome was dropped, not recorded.
	require.NoError(t, w.Start(context.Background()))
	assert.Equal(t, StatusLocked, statusOf(t, c, q, "m"))
	assert.Equal(t, int64(0), w.Stats().Counts.Succeeded)
	assert.Equal(t, int64(1), w.Stats().Counts.Abandoned, "counted once")
	require.NoError(t, w.Close())
}

// TestWorkerCloseWarnsOnlyWhenItCuts: closing an idle worker logs no
// warning; closing one whose handler runs cancels it, counts it and warns.
func TestWorkerCloseWarnsOnlyWhenItCuts(t *testing.T) {
	s := queuetest.RealServer(t)
	logs := &lockedBuffer{}
	c := newClient(t, s, &Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})

	idle, calls, ev := startWorkerEvents(t, c, queuetest.QueueName(t), WorkerConfig{}, nil)
	res := enqueue(t, c, idle.Queue(), "x", nil)
	next(t, calls)
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, res.MessageID, 1))
	require.NoError(t, idle.Close())
	assert.NotContains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), `msg="mq: worker stopped"`)

	q := queuetest.QueueName(t) + ":busy"
	started := make(chan struct{})
	busy, busyEv := startSubscribed(t, c, q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}),
	})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "cut"})
	<-started
	require.NoError(t, busy.Close())
	// By the handler's return, or by Close's grace running out on a busy
	// machine, which does not know the message's id.
	waitOutcomes(t, busyEv, map[Outcome]int{OutcomeAbandoned: 1})
	assert.Equal(t, int64(1), busy.Stats().Counts.Abandoned)
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	assert.Equal(t, StatusLocked, statusOf(t, c, q, "cut"))
}

func TestWorkerStop(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()

		// Stop before start, twice, and Close: all fine.
		idle, err := c.NewWorker(queuetest.QueueName(t)+":idle", &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		require.NoError(t, idle.Stop(ctx))
		require.NoError(t, idle.Stop(ctx))
		require.NoError(t, idle.Close())
		assert.False(t, idle.Info().Running)

		// Without a deadline: Stop waits for the handler and its outcome.
		q := queuetest.QueueName(t)
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
		assert.Equal(t, StatusNone, statusOf(t, c, q, "s"), "the outcome was recorded (and the message collected) before Stop returned")
		require.NoError(t, w.Stop(ctx), "twice")

		// With a deadline: the handler's context is cancelled, Stop answers
		// the deadline, and the message stays locked for a later worker.
		q2 := queuetest.QueueName(t) + ":2"
		started2 := make(chan struct{})
		sawCancel := make(chan struct{})
		w2, ev2 := startSubscribed(t, c, q2, &WorkerConfig{
			LockTime:          500 * time.Millisecond,
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				close(started2)
				<-ctx.Done()
				close(sawCancel)
				return ctx.Err()
			}),
		})
		enqueue(t, c, q2, "x", &EnqueueOptions{MessageID: "s2"})
		<-started2
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, w2.Stop(dctx), context.DeadlineExceeded)
		<-sawCancel
		// Abandoned by the stop, which does not know the message's id.
		waitOutcomes(t, ev2, map[Outcome]int{OutcomeAbandoned: 1})
		assert.Equal(t, int64(1), w2.Stats().Counts.Abandoned)
		assert.Contains(t, []MessageStatus{StatusLocked, StatusQueued}, statusOf(t, c, q2, "s2"), "not done")
		_, calls := startWorker(t, c, q2, WorkerConfig{}, nil)
		h := next(t, calls)
		assert.Equal(t, handling{id: "s2", attempt: 2, value: "x"}, h, "handled again after the lock expired")
	})
}

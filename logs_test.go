package mq

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorded answers the records logged with message msg.
func (r *logRecorder) recorded(msg string) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.records {
		if rec.Message == msg {
			out = append(out, rec)
		}
	}
	return out
}

// attrs answers a record's attributes by key.
func attrs(rec slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value
		return true
	})
	return m
}

// TestWorkerStartStopLines: one Info line at the start with the worker's
// settings (durations as durations), one at the stop with what the run
// did.
func TestWorkerStartStopLines(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	logs := &logRecorder{}
	c := newClient(t, s, &Config{Logger: logs.logger(t)})
	q := queuetest.QueueName(t)
	w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{LockTime: 90 * time.Second, HandlerThreads: 2}, nil)
	enqueue(t, c, q, "a", nil)
	enqueue(t, c, q, "b", nil)
	next(t, calls)
	next(t, calls)
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 2})
	require.NoError(t, w.Stop(context.Background()))

	starts := logs.recorded("mq: worker starting")
	require.Len(t, starts, 1)
	assert.Equal(t, slog.LevelInfo, starts[0].Level)
	a := attrs(starts[0])
	assert.Equal(t, w.ID(), a["worker_id"].String())
	assert.Equal(t, Version, a["version"].String())
	require.Equal(t, slog.KindDuration, a["lock_time"].Kind(), "a duration, not a number")
	assert.Equal(t, 90*time.Second, a["lock_time"].Duration())
	assert.Equal(t, int64(2), a["handler_threads"].Int64())
	assert.Equal(t, int64(1), a["worker_threads"].Int64())
	assert.Equal(t, int64(32), a["prefetch"].Int64())
	assert.True(t, a["renew_locks"].Bool())
	assert.False(t, a["throttled"].Bool())
	assert.Equal(t, DefaultLogSummaryEvery, a["summary_every"].Duration())
	assert.Equal(t, heartbeatEvery, a["heartbeat_every"].Duration())

	stops := logs.recorded("mq: worker stopped")
	require.Len(t, stops, 1)
	assert.Equal(t, slog.LevelInfo, stops[0].Level)
	a = attrs(stops[0])
	assert.Equal(t, w.ID(), a["worker_id"].String())
	assert.Equal(t, slog.KindDuration, a["ran"].Kind())
	assert.Positive(t, a["ran"].Duration())
	assert.Equal(t, int64(2), a["succeeded"].Int64())
	assert.Equal(t, int64(0), a["failed"].Int64())

	// A second run counts from its own start.
	require.NoError(t, w.Start(t.Context()))
	require.NoError(t, w.Stop(context.Background()))
	stops = logs.recorded("mq: worker stopped")
	require.Len(t, stops, 2)
	assert.Equal(t, int64(0), attrs(stops[1])["succeeded"].Int64())
}

// TestSummaryLine: a summary tells the counts since the last one and
// their rates; nothing at all happened, no line; counters reset meanwhile
// count from zero.
func TestSummaryLine(t *testing.T) {
	t.Parallel()
	logs := &logRecorder{}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, &Config{Logger: logs.logger(t)})
	require.NoError(t, err)
	w, err := c.NewWorker("q", &WorkerConfig{Handler: nopHandler})
	require.NoError(t, err)
	s := summarizer{w: w, last: w.counters(), at: time.Now().Add(-2 * time.Second)}

	w.stats.count(cPollErrors)
	s.log()
	assert.Empty(t, logs.recorded("mq: worker summary"), "no message handled: no line")

	s.at = time.Now().Add(-2 * time.Second)
	for range 3 {
		w.stats.count(cSucceeded)
	}
	w.stats.count(cFailed)
	w.stats.count(cReleased)
	s.log()
	lines := logs.recorded("mq: worker summary")
	require.Len(t, lines, 1)
	assert.Equal(t, slog.LevelInfo, lines[0].Level)
	a := attrs(lines[0])
	assert.Equal(t, w.ID(), a["worker_id"].String())
	assert.Equal(t, int64(4), a["handled"].Int64())
	assert.Equal(t, int64(3), a["succeeded"].Int64())
	assert.Equal(t, int64(1), a["failed"].Int64())
	assert.Equal(t, int64(1), a["released"].Int64())
	assert.Equal(t, int64(0), a["poll_errors"].Int64(), "counted before the last line")
	require.Equal(t, slog.KindDuration, a["over"].Kind())
	over := a["over"].Duration()
	assert.GreaterOrEqual(t, over, 2*time.Second)
	assert.InDelta(t, 4/over.Seconds(), a["handled_per_second"].Float64(), 0.01)

	s.log()
	assert.Len(t, logs.recorded("mq: worker summary"), 1, "nothing since: no line")

	w.ResetStats()
	w.stats.count(cRetried)
	s.log()
	lines = logs.recorded("mq: worker summary")
	require.Len(t, lines, 2)
	a = attrs(lines[1])
	assert.Equal(t, int64(1), a["handled"].Int64(), "counted from the reset")
	assert.Equal(t, int64(1), a["retried"].Int64())
	assert.Equal(t, int64(0), a["succeeded"].Int64())
}

// TestSummaryWhileWorkFlows: a running worker logs summaries by
// LogSummaryEvery, which together count every handling; a negative
// LogSummaryEvery logs none.
func TestSummaryWhileWorkFlows(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	for _, every := range []time.Duration{20 * time.Millisecond, -1} {
		t.Run(fmt.Sprint(every), func(t *testing.T) {
			logs := &logRecorder{}
			c := newClient(t, s, &Config{Logger: logs.logger(t)})
			q := queuetest.QueueName(t)
			w, calls, ev := startWorkerEvents(t, c, q, WorkerConfig{LogSummaryEvery: every}, nil)
			const n = 5
			for i := range n {
				enqueue(t, c, q, i, nil)
			}
			for range n {
				next(t, calls)
			}
			handled := func() int64 {
				var sum int64
				for _, rec := range logs.recorded("mq: worker summary") {
					sum += attrs(rec)["handled"].Int64()
				}
				return sum
			}
			if every > 0 {
				queuetest.WaitFor(t, "summaries of every handling", func() bool { return handled() == n })
				return
			}
			waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: n})
			require.NoError(t, w.Stop(context.Background()))
			assert.Empty(t, logs.recorded("mq: worker summary"))
			_, ok := attrs(logs.recorded("mq: worker starting")[0])["summary_every"]
			assert.False(t, ok, "the start line says no summary")
		})
	}
}

// TestRouteRedisLogs: go-redis's own lines go through the slog logger,
// at Warn when they tell of a failure, else at Info. go-redis's logger is
// the process's, so the test puts go-redis's default back at its end.
func TestRouteRedisLogs(t *testing.T) {
	logs := &logRecorder{}
	RouteRedisLogs(logs.logger(t))
	t.Cleanup(logging.Enable)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	fromRedis := func() (warns []string) {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		for _, rec := range logs.records {
			if attrs(rec)["source"].String() == "go-redis" && rec.Level == slog.LevelWarn && strings.Contains(rec.Message, addr) {
				warns = append(warns, rec.Message)
			}
		}
		return warns
	}
	queuetest.WaitFor(t, "go-redis's line of a failed dial", func() bool {
		_ = rdb.Ping(context.Background()).Err()
		return len(fromRedis()) > 0
	})
	assert.True(t, strings.HasPrefix(fromRedis()[0], "redis: "), fromRedis()[0])
	assert.False(t, strings.HasPrefix(fromRedis()[0], "redis: redis: "), "one prefix")

	// Levels, on lines as go-redis writes them.
	lines := &logRecorder{}
	rl := redisLogger{lines.logger(t)}
	rl.Printf(context.Background(), "sentinel: new master=%q addr=%q", "m", "10.0.0.1:6379")
	rl.Printf(context.Background(), "sentinel: GetMasterAddrByName name=%q failed: %s", "m", "i/o timeout")
	assert.Equal(t, []string{`redis: sentinel: new master="m" addr="10.0.0.1:6379"`}, lines.messages(slog.LevelInfo))
	assert.Equal(t, []string{`redis: sentinel: GetMasterAddrByName name="m" failed: i/o timeout`}, lines.messages(slog.LevelWarn))
}

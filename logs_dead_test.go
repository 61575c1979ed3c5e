package mq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogsCountDeadLetters: the summary and stop lines count the
// handlings that made dead letters (they said "succeeded=2 retried=0
// failed=0" after 39 messages died, issue 23).
func TestLogsCountDeadLetters(t *testing.T) {
	t.Parallel()
	t.Run("summary", func(t *testing.T) {
		t.Parallel()
		logs := &logRecorder{}
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		t.Cleanup(func() { _ = rdb.Close() })
		c, err := New(rdb, &Config{Logger: logs.logger(t)})
		require.NoError(t, err)
		w, err := c.NewWorker("q", &WorkerConfig{Handler: nopHandler})
		require.NoError(t, err)
		s := summarizer{w: w, last: w.counters(), at: time.Now().Add(-2 * time.Second)}
		w.stats.count(cDead)
		w.stats.count(cDead)
		s.log()
		lines := logs.recorded("mq: worker summary")
		require.Len(t, lines, 1, "dead letters alone are handlings worth a line")
		a := attrs(lines[0])
		assert.Equal(t, int64(2), a["handled"].Int64())
		assert.Equal(t, int64(2), a[string(OutcomeDead)].Int64())
	})
	t.Run("stop", func(t *testing.T) {
		t.Parallel()
		s := queuetest.RealServer(t)
		logs := &logRecorder{}
		c := newClient(t, s, &Config{Logger: logs.logger(t)})
		q := queuetest.QueueName(t)
		ctx := context.Background()
		w, err := c.NewWorker(q, &WorkerConfig{
			Handler: HandlerFunc(func(context.Context, *Message) error { return Final(errors.New("bad")) }),
		})
		require.NoError(t, err)
		for _, id := range []string{"a", "b"} {
			_, err := c.Enqueue(ctx, q, Raw("x"), &EnqueueOptions{MessageID: id})
			require.NoError(t, err)
		}
		require.NoError(t, w.Start(t.Context()))
		queuetest.WaitFor(t, "two dead letters", func() bool {
			n, err := c.Inspector().QueueCounts(ctx, q)
			return err == nil && n.Dead == 2
		})
		require.NoError(t, w.Stop(ctx))
		stops := logs.recorded("mq: worker stopped")
		require.Len(t, stops, 1)
		a := attrs(stops[0])
		assert.Equal(t, int64(2), a[string(OutcomeDead)].Int64())
		assert.Equal(t, int64(0), a[string(OutcomeSucceeded)].Int64())
	})
}

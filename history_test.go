package mq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// historySum adds up a queue's history of the last day.
func historySum(t *testing.T, c *Client, q string) HistoryMinute {
	t.Helper()
	h, err := c.Inspector().History(context.Background(), q, time.Time{})
	require.NoError(t, err)
	var sum HistoryMinute
	for _, m := range h {
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	return sum
}

// TestHistoryOfAWorker: a worker's handlings land in the queue's history
// in Redis (docs/protocol.md §17), each once, by outcome, and the history
// answers a day of minutes up to the server's current one.
func TestHistoryOfAWorker(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()

	h, err := c.Inspector().History(ctx, q, time.Time{})
	require.NoError(t, err)
	require.Len(t, h, 1440)
	now := time.UnixMilli(s.Now(t))
	assert.Equal(t, now.Truncate(time.Minute), h[1439].Start, "the current minute last")
	assert.Equal(t, h[1439].Start.Add(-1439*time.Minute), h[0].Start)
	since := h[1439].Start.Add(-time.Minute + time.Second)
	h, err = c.Inspector().History(ctx, q, since)
	require.NoError(t, err)
	assert.Equal(t, since.Truncate(time.Minute), h[0].Start, "from the minute holding since")
	_, err = c.Inspector().History(ctx, "", time.Time{})
	assert.ErrorIs(t, err, ErrInvalidQueueName)
	recent, err := c.Inspector().RecentHistory(ctx, q, 90*time.Second)
	require.NoError(t, err)
	require.Len(t, recent, 2, "90 s: the current minute and the one before")
	assert.Equal(t, recent[0].Start.Add(time.Minute), recent[1].Start)
	assert.False(t, recent[1].Start.Before(h[len(h)-1].Start), "the current minute last")
	recent, err = c.Inspector().RecentHistory(ctx, q, 48*time.Hour)
	require.NoError(t, err)
	assert.Len(t, recent, 1440, "at most the window")
	_, err = c.Inspector().RecentHistory(ctx, q, 0)
	assert.ErrorIs(t, err, ErrInvalidOption)

	w, err := c.NewWorker(q, &WorkerConfig{
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			switch {
			case m.ID == "bad":
				return Final(errors.New("no"))
			case m.ID == "flaky" && m.Attempt == 1:
				return errors.New("not yet")
			}
			return nil
		}),
		RetryBackoff: func(int) time.Duration { return time.Millisecond },
	})
	require.NoError(t, err)
	for _, id := range []string{"good1", "good2", "flaky", "bad"} {
		_, err := c.Enqueue(ctx, q, Raw("x"), &EnqueueOptions{MessageID: id})
		require.NoError(t, err)
	}
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	queuetest.WaitFor(t, "five handlings in the history", func() bool { return historySum(t, c, q).Processed >= 5 })
	require.NoError(t, w.Close())
	assert.Equal(t, HistoryMinute{Processed: 5, Failed: 2, Dead: 1}, historySum(t, c, q))
	assert.Equal(t, int64(3), HistoryMinute{Processed: 5, Failed: 2}.Succeeded())
}

package mqprom

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueCollectorHistory: the history gauges sum the last whole minute
// and the last 60 whole minutes of the queue's history in Redis, by the
// server's clock (the running minute left out), and go on, marked stale,
// while Redis is away.
func TestQueueCollectorHistory(t *testing.T) {
	t.Parallel()
	s := queuetest.MiniServer(t)
	now := time.Now()
	s.Mini.SetTime(now)
	c := newClient(t, s.RDB, false)
	m := now.Unix() / 60
	// Written as the scripts write them (docs/protocol.md §17).
	fields := map[string]any{"last": m,
		fmt.Sprint(m, "p"):   1, // the running minute
		fmt.Sprint(m-1, "p"): 5, fmt.Sprint(m-1, "f"): 2, fmt.Sprint(m-1, "d"): 1,
		fmt.Sprint(m-60, "p"): 10, fmt.Sprint(m-60, "f"): 3,
		fmt.Sprint(m-61, "p"): 100, fmt.Sprint(m-61, "d"): 100, // an hour ago
	}
	require.NoError(t, s.RDB.HSet(context.Background(), keys.Key("q", false, keys.History), fields).Err())
	col := NewQueueCollector(c, &QueueOptions{Queues: []string{"q"}, Timeout: 300 * time.Millisecond, Logger: slog.New(&recorder{})})
	want := map[string]float64{
		`mq_history_handlings_last_minute{kind="processed",queue="q"}`: 5,
		`mq_history_handlings_last_minute{kind="failed",queue="q"}`:    2,
		`mq_history_handlings_last_minute{kind="dead",queue="q"}`:      1,
		`mq_history_handlings_last_hour{kind="processed",queue="q"}`:   15,
		`mq_history_handlings_last_hour{kind="failed",queue="q"}`:      5,
		`mq_history_handlings_last_hour{kind="dead",queue="q"}`:        1,
		`mq_queue_stale{queue="q"}`:                                    0,
	}
	assert.Equal(t, want, only(gather(t, col), "mq_history_", "mq_queue_stale"))

	s.Mini.Close()
	want[`mq_queue_stale{queue="q"}`] = 1
	assert.Equal(t, want, only(gather(t, col), "mq_history_", "mq_queue_stale"), "the last read, marked stale")
}

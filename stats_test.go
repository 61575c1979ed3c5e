package mq

import (
	"encoding/json"
	"testing"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkerStats: times keep their full resolution (a no-op handler takes
// well under a millisecond, and reads more than zero), the counters name
// what they count, and the worker's description marshals to JSON.
func TestWorkerStats(t *testing.T) {
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	w, calls, ev := startWorkerEvents(t, c, queuetest.QueueName(t), WorkerConfig{}, nil)
	res := enqueue(t, c, w.Queue(), "x", nil)
	next(t, calls)
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, res.MessageID, 1))
	assert.Contains(t, []MessageStatus{StatusDoneAwaitingGC, StatusNone}, statusOf(t, c, w.Queue(), res.MessageID))
	st := w.Stats()
	assert.Equal(t, int64(1), st.HandlingTime.Count)
	assert.Positive(t, st.HandlingTime.P50, "a sub-millisecond handling is not rounded to 0")
	assert.Equal(t, st.HandlingTime.Last, st.HandlingTime.P50)

	b, err := json.Marshal(w.Info())
	require.NoError(t, err)
	var back WorkerInfo
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, w.Queue(), back.Queue)
	assert.Equal(t, int64(1), back.Stats.Counts.Succeeded)
	assert.Contains(t, string(b), `"succeeded":1`)

	w.ResetStats()
	assert.Zero(t, w.Stats().Counts)
}

// TestSkipCountersAreTheProtocols: every skip reason the poll can give has
// a counter of its own, and no counter waits for a reason it never gives.
func TestSkipCountersAreTheProtocols(t *testing.T) {
	var reasons []string
	for r := range skipCounters {
		reasons = append(reasons, r)
	}
	assert.ElementsMatch(t, protocol.SkipReasons, reasons)
}

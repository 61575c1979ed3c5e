package mq

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimitsValidate: limits out of range are refused with
// ErrInvalidOption, before anything is written; ParseRate reads what
// Rate.String writes.
func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{
		{Rate: Rate{N: 100}},
		{Rate: Rate{Per: time.Second}},
		{Rate: Rate{N: -1, Per: time.Second}},
		{Rate: Rate{N: 1, Per: time.Microsecond}},
		{Rate: Rate{N: 1, Per: 1500 * time.Microsecond}},
		{KeyRate: Rate{N: 1, Per: time.Second, Burst: -1}},
		{Concurrency: -1},
		{KeyConcurrency: maxLimitN + 1},
	} {
		assert.ErrorIs(t, l.Validate(), ErrInvalidOption, "%+v", l)
	}
	assert.NoError(t, Limits{Rate: Rate{N: 100, Per: time.Second, Burst: 5}, Concurrency: 10}.Validate())
	for _, s := range []string{"100/1s", "5/1m0s+10", "none"} {
		r, err := ParseRate(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, r.String())
	}
	for _, s := range []string{"100", "x/1s", "1/x", "1/1s+x", "0/1s"} {
		_, err := ParseRate(s)
		assert.ErrorIs(t, err, ErrInvalidOption, s)
	}
}

// TestLimitsRefusedInput: SetLimits and an enqueue with a bad limit key
// are refused before anything is written.
func TestLimitsRefusedInput(t *testing.T) {
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	err := c.Inspector().SetLimits(ctx, q, Limits{Concurrency: -3})
	assert.ErrorIs(t, err, ErrInvalidOption)
	st, err := c.Inspector().Limits(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, LimitState{}, st, "nothing written")
	for _, k := range []string{"a\x00b", strings.Repeat("k", MaxLimitKeyLength+1)} {
		_, err = c.Enqueue(ctx, q, "x", &EnqueueOptions{LimitKey: k})
		assert.ErrorIs(t, err, ErrInvalidOption)
	}
	n, err := c.Inspector().QueueCounts(ctx, q)
	require.NoError(t, err)
	assert.Zero(t, n.Total, "nothing enqueued")
}

// TestLimitsInQueueCounts: the slots held and the messages parked show in
// the queue's counts (one call), as Inspector.Limits reads them.
func TestLimitsInQueueCounts(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	require.NoError(t, c.Inspector().SetLimits(ctx, q, Limits{Concurrency: 5, KeyConcurrency: 1}))
	for _, id := range []string{"a", "b"} {
		_, err := c.Enqueue(ctx, q, id, &EnqueueOptions{MessageID: id, LimitKey: "k"})
		require.NoError(t, err)
	}
	holding := make(chan struct{}, 2)
	release := make(chan struct{})
	w, err := c.StartWorker(ctx, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		HandlerThreads: 2, // room for the second: it is polled, and parked
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			holding <- struct{}{}
			<-release
			return nil
		})})
	require.NoError(t, err)
	defer w.Close()
	<-holding
	queuetest.WaitFor(t, "the second message parked behind the first", func() bool {
		n, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		return n.LimitParked == 1
	})
	n, err := c.Inspector().QueueCounts(ctx, q)
	require.NoError(t, err)
	st, err := c.Inspector().Limits(ctx, q)
	require.NoError(t, err)
	assert.EqualValues(t, 1, n.LimitSlotsHeld)
	assert.True(t, n.Limited)
	other, err := c.Inspector().QueueCounts(ctx, q+"-free")
	require.NoError(t, err)
	assert.False(t, other.Limited, "a queue without limits")
	assert.Equal(t, st.SlotsHeld, n.LimitSlotsHeld)
	assert.Equal(t, st.Parked, n.LimitParked)
	close(release)
	queuetest.WaitFor(t, "both handled and the slot freed", func() bool {
		n, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		return n.Total == 0 && n.LimitSlotsHeld == 0 && n.LimitParked == 0
	})
}

package mq

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScheduleRegistersQueuePattern: a schedule makes its queue exist
// before its first tick (issue 23: the registry is kept by workers,
// enqueues, schedules and pauses), and ClearQueues takes it out again.
func TestScheduleRegistersQueuePattern(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	in := c.Inspector()
	ok, err := in.QueueExists(ctx, q)
	require.NoError(t, err)
	require.False(t, ok)
	_, err = in.SetSchedule(ctx, q, Schedule{Name: "hourly", Every: time.Hour, Message: "x"})
	require.NoError(t, err)
	ok, err = in.QueueExists(ctx, q)
	require.NoError(t, err)
	assert.True(t, ok, "a queue with a schedule exists")
	names, err := in.QueueNames(ctx, "*")
	require.NoError(t, err)
	assert.Contains(t, names, q)
	_, err = in.ClearQueues(ctx, q)
	require.NoError(t, err)
	ok, err = in.QueueExists(ctx, q)
	require.NoError(t, err)
	assert.False(t, ok, "cleared")
}

package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMSRoundsUp: a duration goes to the scripts in whole milliseconds,
// rounded up, so that a positive duration never becomes 0 (which the
// scripts read as none, or as the default).
func TestMSRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		-time.Second: 0, 0: 0, 1: 1, time.Millisecond - 1: 1, time.Millisecond: 1,
		time.Millisecond + 1: 2, 1500 * time.Microsecond: 2, time.Hour: 3600000,
	} {
		assert.Equal(t, want, MS(d), "%v", d)
	}
}

// TestArgsRoundDurationsUp checks every duration argument of every script
// call: a nanosecond goes as 1 ms.
func TestArgsRoundDurationsUp(t *testing.T) {
	const ns = time.Nanosecond
	enq := EnqueueCall{Token: "t", Keep: ns, Messages: []EnqueueMessage{{ID: "m", InitialBackoff: ns, LockTime: ns}}}.argv()
	assert.Equal(t, int64(1), enq[1], "receipt keep time")
	assert.Equal(t, int64(1), enq[6], "initial backoff")
	assert.Equal(t, int64(1), enq[7], "lock time")

	p := PollArgs{LockTime: ns, Sleeps: [5]time.Duration{ns, ns, ns, ns, ns}, MaxSteps: 1, DeadMaxAge: ns,
		Completions: []Completion{{ID: "m", LockedUntil: 5, Outcome: OutcomeRetry, Backoff: ns}}}.argv(nil, 0)
	for i := 0; i < 6; i++ {
		assert.Equal(t, int64(1), p[i], "poll lock time and sleeps, ARGV[%d]", i+1)
	}
	assert.Equal(t, MS(PollReceiptTTL), p[12], "poll receipt keep time")
	assert.Equal(t, int64(1), p[14], "dead letter age bound") // 0 given: none
	assert.Equal(t, int64(1), p[21], "completion backoff")

	r := renewArgv([]Renewal{{ID: "m", LockedUntil: 5, LockTime: ns}, {ID: "n", LockedUntil: 5, LockTime: 0}})
	assert.Equal(t, int64(1), r[2], "renew lock time")
	assert.Equal(t, int64(1), r[6], "renew lock time, at least 1 ms")
}

// TestQueueCountsAreThePollsSize: QueueCounts and the poll's queue size
// come from the one formula of counts.lua.
func TestQueueCountsAreThePollsSize(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		empty, err := QueueCounts(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		assert.Equal(t, Counts{}, empty)
		for i := range 5 {
			mustEnqueue(t, s, q, i, nil)
		}
		mustEnqueue(t, s, q, "later", &EnqueueMessage{ID: "later", InitialBackoff: time.Hour})
		st := onePoll(t, s, q)
		require.Equal(t, StepHandle, st.Kind)
		st2 := onePoll(t, s, q)
		ok, err := complete(ctx, s, q, []Completion{{ID: st2.ID, LockedUntil: st2.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)

		n, err := QueueCounts(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		// Five are left, one of them locked, one delayed; the one handled
		// was collected at once (§11).
		assert.Equal(t, Counts{Total: 5, Locked: 1, Backoff: 1, Done: 0, Queued: 3}, n)
		r, err := poll(ctx, s, q, PollArgs{WantSize: true})
		require.NoError(t, err)
		assert.Equal(t, n.Queued, r.QueueSize)
	})
}

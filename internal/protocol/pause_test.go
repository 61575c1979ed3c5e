package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPause: docs/protocol.md §10. A paused queue hands nothing out but
// records outcomes and takes enqueues; its polls sleep the longest
// end-of-queue sleep; the counts say it is paused; a resume wakes a
// sleeping worker and hands out again.
func TestPause(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		pause := func(p bool) bool {
			t.Helper()
			changed, err := Pause(ctx, s.RDB, s.Keys(q), p)
			require.NoError(t, err)
			return changed
		}
		paused := func() bool {
			t.Helper()
			n, err := QueueCounts(ctx, s.RDB, s.Keys(q))
			require.NoError(t, err)
			return n.Paused
		}

		mustEnqueue(t, s, q, "held", &EnqueueMessage{ID: "held"})
		held := pollUntil(t, s, q, StepHandle, "")
		assert.False(t, paused())
		assert.True(t, pause(true))
		assert.False(t, pause(true), "paused already")
		assert.True(t, paused())

		code, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid})
		require.NoError(t, err)
		assert.Equal(t, Added, code, "enqueues go on")
		ndry := ndryRuns(t, s, q)
		r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10, MaxHandles: 10,
			Completions: []Completion{{ID: "held", LockedUntil: held.LockedUntil, Outcome: OutcomeSuccess}}})
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, r.Recorded, "outcomes are recorded")
		require.Len(t, r.Steps, 1)
		assert.Equal(t, StepSleep, r.Steps[0].Kind)
		assert.Equal(t, testSleeps[4], r.Steps[0].Sleep, "the longest sleep")
		assert.Equal(t, StatusQueued, statusOf(t, s, q, mid), "not handed out")
		assert.Equal(t, ndry, ndryRuns(t, s, q), "ndry-runs unchanged")

		before := [2][]string{list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)}
		assert.True(t, pause(false))
		assert.NotEqual(t, before, [2][]string{list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)},
			"a resume moves the sleep sentinel, which wakes a sleeper")
		assert.False(t, pause(false), "resumed already")
		assert.False(t, paused())
		assert.Equal(t, "x", string(pollUntil(t, s, q, StepHandle, "").Data))
	})
}

// ndryRuns reads q's ndry-runs, "" when unset.
func ndryRuns(t *testing.T, s *queuetest.Server, q string) string {
	t.Helper()
	v, err := s.RDB.Get(context.Background(), s.Key(q, keys.NDryRuns)).Result()
	if err != nil {
		require.ErrorContains(t, err, "redis: nil")
		return ""
	}
	return v
}

package protocol

import (
	"context"
	"testing"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTick: docs/protocol.md §15. tick.lua writes only when the
// schedule's next tick is still the one the scheduler read, and its spec
// the one it read: then it enqueues the tick's message (once, as a new
// message ready now, waking a sleeper) and moves the next tick; a skip
// moves it without a message; a next tick with no schedule is dropped.
func TestTick(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		sk, qk := keys.Schedules(q, s.Cluster), s.Keys(q)
		_, err := SetSchedule(ctx, s.RDB, sk, "s", "spec", 1000)
		require.NoError(t, err)
		next := func(name string) float64 {
			t.Helper()
			v, err := s.RDB.ZScore(ctx, sk[1], name).Result()
			if err == redis.Nil {
				return -1
			}
			require.NoError(t, err)
			return v
		}
		tick := Tick{Name: "s", Spec: "spec", At: 1000, Next: 2000, Enqueue: true, ID: "sched:s:1000", Content: "c", Meta: `{"k":"v"}`, LockTime: 5000}

		stale := tick
		stale.At = 500
		took, err := RunTick(ctx, s.RDB, sk, qk, stale)
		require.NoError(t, err)
		assert.False(t, took, "another next tick")
		changed := tick
		changed.Spec = "old spec"
		took, err = RunTick(ctx, s.RDB, sk, qk, changed)
		require.NoError(t, err)
		assert.False(t, took, "another spec")
		assert.Equal(t, 1000.0, next("s"))
		assert.Empty(t, list(t, s, q, keys.MidsReady), "nothing enqueued")

		sleepers := [2][]string{list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)}
		took, err = RunTick(ctx, s.RDB, sk, qk, tick)
		require.NoError(t, err)
		assert.True(t, took)
		assert.Equal(t, 2000.0, next("s"))
		assert.Equal(t, []string{"sched:s:1000"}, list(t, s, q, keys.MidsReady))
		assert.Equal(t, "c", queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "sched:s:1000"))
		assert.Equal(t, `{"k":"v"}`, queuetest.HGet(t, s.RDB, s.Key(q, keys.Meta), "sched:s:1000"))
		assert.Equal(t, "5000", queuetest.HGet(t, s.RDB, s.Key(q, keys.LockTimes), "sched:s:1000"))
		assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.UDTs), "sched:s:1000"))
		assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "the circle made")
		assert.NotEqual(t, sleepers, [2][]string{list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)}, "a sleeper woken")
		assert.Equal(t, StatusQueued, statusOf(t, s, q, "sched:s:1000"))

		took, err = RunTick(ctx, s.RDB, sk, qk, tick)
		require.NoError(t, err)
		assert.False(t, took, "the same tick again: the next tick moved")
		assert.Equal(t, []string{"sched:s:1000"}, list(t, s, q, keys.MidsReady), "enqueued once")

		skip := Tick{Name: "s", Spec: "spec", At: 2000, Next: 9000}
		took, err = RunTick(ctx, s.RDB, sk, qk, skip)
		require.NoError(t, err)
		assert.True(t, took)
		assert.Equal(t, 9000.0, next("s"))
		assert.Equal(t, []string{"sched:s:1000"}, list(t, s, q, keys.MidsReady), "a skip enqueues nothing")

		require.NoError(t, s.RDB.ZAdd(ctx, sk[1], redis.Z{Score: 10, Member: "orphan"}).Err())
		took, err = RunTick(ctx, s.RDB, sk, qk, Tick{Name: "orphan", At: 10, Next: 20})
		require.NoError(t, err)
		assert.False(t, took)
		assert.Equal(t, -1.0, next("orphan"), "a next tick with no schedule dropped")
	})
}

// TestScheduleAdmin: docs/protocol.md §15. Set writes the spec and the
// next tick (none when paused); a replace writes only over the spec it
// read; delete removes both; peek answers the first tick, with its spec
// only when due, and the server's time; list answers every schedule.
func TestScheduleAdmin(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		sk := keys.Schedules(q, s.Cluster)
		now, _, ok, err := PeekSchedule(ctx, s.RDB, sk)
		require.NoError(t, err)
		assert.False(t, ok, "no schedule")
		assert.Greater(t, now, int64(1e12), "the server's time, in ms")

		isNew, err := SetSchedule(ctx, s.RDB, sk, "due", "a", now-10)
		require.NoError(t, err)
		assert.True(t, isNew)
		_, err = SetSchedule(ctx, s.RDB, sk, "later", "b", now+60000)
		require.NoError(t, err)
		_, err = SetSchedule(ctx, s.RDB, sk, "paused", "c", 0)
		require.NoError(t, err)
		_, first, ok, err := PeekSchedule(ctx, s.RDB, sk)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, ScheduleEntry{Name: "due", Spec: "a", Next: now - 10}, first)

		n, err := ReplaceSchedule(ctx, s.RDB, sk, "due", "not a", "a2", now+120000)
		require.NoError(t, err)
		assert.EqualValues(t, ScheduleChanged, n)
		n, err = ReplaceSchedule(ctx, s.RDB, sk, "nope", "", "x", 0)
		require.NoError(t, err)
		assert.EqualValues(t, ScheduleUnknown, n)
		n, err = ReplaceSchedule(ctx, s.RDB, sk, "due", "a", "a2", now+120000)
		require.NoError(t, err)
		assert.EqualValues(t, ScheduleReplaced, n)
		_, first, _, err = PeekSchedule(ctx, s.RDB, sk)
		require.NoError(t, err)
		assert.Equal(t, ScheduleEntry{Name: "later", Next: now + 60000}, first, "a tick not due: no spec")

		had, err := DeleteSchedule(ctx, s.RDB, sk, "later")
		require.NoError(t, err)
		assert.True(t, had)
		had, err = DeleteSchedule(ctx, s.RDB, sk, "later")
		require.NoError(t, err)
		assert.False(t, had)
		_, all, err := ListSchedules(ctx, s.RDB, sk)
		require.NoError(t, err)
		assert.ElementsMatch(t, []ScheduleEntry{{Name: "due", Spec: "a2", Next: now + 120000}, {Name: "paused", Spec: "c"}}, all)
	})
}

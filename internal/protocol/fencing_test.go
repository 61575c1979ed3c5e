package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpecComplete: docs/protocol.md §6, §7 and §11, outcomes fenced on
// the lock, and what each one leaves.
func TestSpecComplete(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		handled := func(q string) Step {
			_, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid})
			require.NoError(t, err)
			st := onePoll(t, s, q)
			require.Equal(t, StepHandle, st.Kind)
			return st
		}
		complete := func(q string, cs ...Completion) []bool {
			ok, err := complete(ctx, s, q, cs)
			require.NoError(t, err)
			return ok
		}

		q := "success"
		st := handled(q)
		assert.True(t, inZSet(t, s, q, keys.Due), "due when its lock runs out")
		assert.Equal(t, []bool{true}, complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}))
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected at completion")
		for _, k := range []keys.Index{keys.Messages, keys.Locks, keys.UDTs, keys.NAttempts, keys.Backoffs} {
			assert.Equal(t, "", hget(t, s, q, k), "%s", keys.Suffixes[k])
		}
		assert.False(t, inZSet(t, s, q, keys.Due), "no longer due")

		q = "success-backoff"
		st = handled(q)
		now := s.Now(t)
		complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess, Backoff: time.Hour})
		near(t, now+3600000, hgetInt(t, s, q, keys.Backoffs), "dedupe backoff")
		status, err := messageStatus(ctx, s, q, mid)
		require.NoError(t, err)
		assert.Equal(t, StatusDoneWithBackoff, status)
		assert.True(t, inZSet(t, s, q, keys.Windows), "in windows until the window ends")
		assert.False(t, inZSet(t, s, q, keys.Due))
		assert.Equal(t, "", hget(t, s, q, keys.Messages), "its content dropped: it is never handed out again")

		q = "retry"
		st = handled(q)
		now = s.Now(t)
		complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRetry, Backoff: time.Minute})
		assert.False(t, isMember(t, s, q, keys.Done), "queued again")
		assert.Equal(t, "", hget(t, s, q, keys.Locks))
		near(t, now+60000, hgetInt(t, s, q, keys.Backoffs), "retry backoff")
		status, err = messageStatus(ctx, s, q, mid)
		require.NoError(t, err)
		assert.Equal(t, StatusQueuedWithBackoff, status)
		assert.True(t, inZSet(t, s, q, keys.Due), "due when the backoff ends")
		assert.Equal(t, "1", hget(t, s, q, keys.NOutcomes), "its outcome counted")

		q = "retry-now"
		st = handled(q)
		setList(t, s, q, keys.MidsReady, "other")
		complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRetry})
		assert.Equal(t, StatusQueued, statusOf(t, s, q, mid))
		assert.Equal(t, []string{mid, "other"}, list(t, s, q, keys.MidsReady), "at the back of the line")
		assert.False(t, inZSet(t, s, q, keys.Due))

		q = "dead"
		st = handled(q)
		complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeDead, Error: "boom"})
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "out of the queue")
		assert.Equal(t, "", hget(t, s, q, keys.Locks))
		assert.False(t, inZSet(t, s, q, keys.Due))
		d, ok, err := DeadLetter(ctx, s.RDB, s.Keys(q), mid)
		require.NoError(t, err)
		require.True(t, ok, "a dead letter")
		assert.Equal(t, DeadRecord{ID: mid, Data: []byte("x"), Reason: "dead", Error: "boom", Attempts: 1,
			FirstEnqueued: d.FirstEnqueued, Died: d.Died,
			AttemptErrors: []AttemptError{{Attempt: 1, At: d.Died, Error: "boom"}}}, d)
		assert.NotZero(t, d.FirstEnqueued)
		assert.GreaterOrEqual(t, d.Died, d.FirstEnqueued)

		q = "release"
		st = handled(q)
		setList(t, s, q, keys.MidsReady, "other")
		assert.Equal(t, []bool{true}, complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRelease}))
		assert.Equal(t, "", hget(t, s, q, keys.Locks), "lock released")
		assert.Equal(t, "", hget(t, s, q, keys.NAttempts), "first attempt uncounted")
		assert.False(t, isMember(t, s, q, keys.Done))
		assert.Equal(t, []string{"other", mid}, list(t, s, q, keys.MidsReady), "first in line")
		assert.Equal(t, StatusQueued, statusOf(t, s, q, mid))
		st = onePoll(t, s, q)
		require.Equal(t, StepHandle, st.Kind)
		assert.Equal(t, mid, st.ID)
		assert.Equal(t, int64(1), st.Attempt, "handed out again as the first attempt")
		assert.Equal(t, []bool{false}, complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil - 1, Outcome: OutcomeRelease}),
			"a release is fenced too")
		assert.Equal(t, "1", hget(t, s, q, keys.NAttempts))

		q = "fenced"
		st = handled(q)
		before := hget(t, s, q, keys.Locks)
		assert.Equal(t, []bool{false}, complete(q, Completion{ID: mid, LockedUntil: st.LockedUntil - 1, Outcome: OutcomeSuccess}),
			"a wrong token")
		assert.Equal(t, before, hget(t, s, q, keys.Locks), "nothing written")
		assert.False(t, isMember(t, s, q, keys.Done))
		assert.Equal(t, []bool{true, false}, complete(q,
			Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess},
			Completion{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRetry, Backoff: time.Hour}),
			"the second completion of one handling finds it gone")
		assert.Equal(t, "", hget(t, s, q, keys.Backoffs))
		assert.Equal(t, []bool{false}, complete(q, Completion{ID: "gone", LockedUntil: 1, Outcome: OutcomeDead}),
			"a message not in the queue")
	})
}

// TestSpecRenew: docs/protocol.md §7, lock renewal fenced like completion, and
// a renewal whose reply was lost (the protocol document's lock-aliases).
func TestSpecRenew(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		_, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid, LockTime: 50 * time.Millisecond})
		require.NoError(t, err)
		st := onePoll(t, s, q)
		require.Equal(t, StepHandle, st.Kind)

		got, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: st.LockedUntil, LockTime: time.Hour}})
		require.NoError(t, err)
		require.Greater(t, got[0], st.LockedUntil, "a new token")
		assert.Equal(t, got[0], hgetInt(t, s, q, keys.Locks))

		// As if that reply was lost: the handling still holds the first
		// token, which proves the lock the renewal wrote.
		again, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: st.LockedUntil, LockTime: time.Hour}})
		require.NoError(t, err)
		require.Greater(t, again[0], got[0], "renewed again from the token held")
		assert.Equal(t, again[0], hgetInt(t, s, q, keys.Locks))

		stale, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: got[0], LockTime: time.Hour}})
		require.NoError(t, err)
		assert.Equal(t, []int64{0}, stale, "a token superseded by a renewal that answered is stale")
		other, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: st.LockedUntil - 1, LockTime: time.Hour}})
		require.NoError(t, err)
		assert.Equal(t, []int64{0}, other, "a token that never held the lock")
		assert.Equal(t, again[0], hgetInt(t, s, q, keys.Locks), "nothing written")

		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: got[0], Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		assert.Equal(t, []bool{false}, ok, "completion with a stale token is fenced")
		ok, err = complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, ok, "completion with the token held, whose renewal replies were lost")
	})
}

// TestSpecRenewAfterHandOut: a lock alias never lets an earlier handling
// prove the lock of a later one.
func TestSpecRenewAfterHandOut(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		_, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid})
		require.NoError(t, err)
		first := onePoll(t, s, q)
		require.Equal(t, StepHandle, first.Kind)
		renewed, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: first.LockedUntil, LockTime: time.Hour}})
		require.NoError(t, err)
		require.NotZero(t, renewed[0])

		// The lock runs out; another poll hands the message out again, in
		// a later millisecond (in the same one, it would write the very
		// lock the first hand-out wrote, which no real lock expiry allows).
		queuetest.WaitFor(t, "the server's clock to move on", func() bool { return s.Now(t) > first.Now })
		// (due says when the lock runs out, §11: it is moved too.)
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Locks), mid, s.Now(t)-1).Err())
		require.NoError(t, s.RDB.ZAdd(ctx, s.Key(q, keys.Due), redis.Z{Score: float64(s.Now(t) - 1), Member: mid}).Err())
		second := onePoll(t, s, q)
		for range 2 { // the circle's sentinel may come first
			if second.Kind != StepHandle {
				second = onePoll(t, s, q)
			}
		}
		require.Equal(t, StepHandle, second.Kind)
		require.EqualValues(t, 2, second.Attempt)

		for _, token := range []int64{first.LockedUntil, renewed[0]} {
			got, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: mid, LockedUntil: token, LockTime: time.Hour}})
			require.NoError(t, err)
			assert.Equal(t, []int64{0}, got, "the first handling's token %d", token)
			ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: token, Outcome: OutcomeSuccess}})
			require.NoError(t, err)
			assert.Equal(t, []bool{false}, ok, "the first handling's token %d", token)
		}
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: second.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, ok)
	})
}

package protocol

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The table tests of docs/protocol.md §4 and §5, as spec_test.go's of §2
// and §3.

var testSleeps = [5]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond,
	40 * time.Millisecond, 50 * time.Millisecond}

const testLockMS = 60000

func onePoll(t *testing.T, s *queuetest.Server, q string) Step {
	t.Helper()
	r, err := poll(context.Background(), s, q, PollArgs{LockTime: testLockMS * time.Millisecond, Sleeps: testSleeps, MaxSteps: 1})
	require.NoError(t, err)
	require.Len(t, r.Steps, 1)
	return r.Steps[0]
}

// TestSpecPollSleep: docs/protocol.md §4, step 2, and §5: the sleep answer.
func TestSpecPollSleep(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()

		q := "sleep-empty"
		st := onePoll(t, s, q)
		assert.Equal(t, StepSleep, st.Kind)
		assert.Equal(t, "a", st.SleepList, "neither list holds the sentinel: a")
		assert.Equal(t, 10*time.Millisecond, st.Sleep)
		assert.Equal(t, int64(1), st.NDryRuns)
		n, err := s.RDB.Get(ctx, s.Key(q, keys.NDryRuns)).Int64()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)

		for ndry := int64(0); ndry <= 6; ndry++ {
			q := fmt.Sprintf("sleep-ndry-%d", ndry)
			setList(t, s, q, keys.MidCircle, EndOfCircle)
			require.NoError(t, s.RDB.Set(ctx, s.Key(q, keys.NDryRuns), ndry, 0).Err())
			st := onePoll(t, s, q)
			require.Equal(t, StepSleep, st.Kind)
			assert.Equal(t, testSleeps[min(5, ndry+1)-1], st.Sleep, "ndry-runs %d", ndry)
			n, err := s.RDB.Get(ctx, s.Key(q, keys.NDryRuns)).Int64()
			require.NoError(t, err)
			assert.Equal(t, ndry+1, n, "incremented")
			assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "the sentinel stays")
		}

		q = "sleep-a-holds"
		setList(t, s, q, keys.ISleepA, "_")
		assert.Equal(t, "b", onePoll(t, s, q).SleepList)
		q = "sleep-b-holds"
		setList(t, s, q, keys.ISleepB, "_")
		assert.Equal(t, "a", onePoll(t, s, q).SleepList)
	})
}

// TestSpecPollSteps: docs/protocol.md §4, step 3: one row per status. The
// status each step leaves, which is all a Carmine worker reads, is
// Carmine's; where the mid goes is §11's: a locked mid and a queued one in
// backoff stay on (or move onto) the circle, the others leave the lists,
// indexed in due or windows when time will change their status.
func TestSpecPollSteps(t *testing.T) {
	type check func(t *testing.T, s *queuetest.Server, q string, now int64, st Step)
	rows := []struct {
		name   string
		st     state
		source string // "ready" or "circle"
		kind   StepKind
		reason string
		useful bool // the step resets ndry-runs
		check  check
	}{
		{"nil from circle: dropped", state{}, "circle", StepSkip, "did-trim", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"nil from ready: dropped", state{}, "ready", StepSkip, "unexpected", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle))
				assert.Empty(t, list(t, s, q, keys.MidsReady))
			}},
		{"locked: stays on the circle", state{exists: true, lock: 3600000}, "circle", StepSkip, "locked", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"locked-with-requeue from ready: onto the circle", state{exists: true, lock: 3600000, rq: true}, "ready", StepSkip, "locked", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"queued-with-backoff: into due, stays on the circle", state{exists: true, backoff: 3600000}, "circle", StepSkip, "queued-with-backoff", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle), "kept, for a Carmine reset of its backoff")
				assert.Equal(t, hgetInt(t, s, q, keys.Backoffs), zscore(t, s, q, keys.Due), "due when the backoff ends")
			}},
		{"queued-with-backoff from ready: onto the circle", state{exists: true, backoff: 3600000}, "ready", StepSkip, "queued-with-backoff", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle))
				assert.Empty(t, list(t, s, q, keys.MidsReady))
			}},
		{"locked, expired backoff left by a Carmine worker: the backoff goes", state{exists: true, lock: 3600000, backoff: -5}, "circle", StepSkip, "locked", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs))
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"done-with-backoff: into windows", state{exists: true, done: true, backoff: 3600000}, "circle", StepSkip, "done-with-backoff", false,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "dropped")
				assert.Equal(t, hgetInt(t, s, q, keys.Backoffs), zscore(t, s, q, keys.Windows), "settled when the window ends")
			}},
		{"done-with-requeue in backoff", state{exists: true, done: true, backoff: 3600000, rq: true}, "circle", StepSkip, "done-with-backoff", false, nil},
		{"done-with-requeue: requeued", state{exists: true, done: true, rq: true, rqLockTime: 777, attempts: 3, legacyRQ: true, backoff: -5},
			"circle", StepSkip, "did-requeue", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, "rq", hget(t, s, q, keys.Messages))
				near(t, now, hgetInt(t, s, q, keys.UDTs), "udts = now")
				assert.Equal(t, int64(777), hgetInt(t, s, q, keys.LockTimes))
				assert.Equal(t, "", hget(t, s, q, keys.MessagesRQ))
				assert.Equal(t, "", hget(t, s, q, keys.LockTimesRQ))
				assert.Equal(t, "", hget(t, s, q, keys.NAttempts))
				assert.False(t, isMember(t, s, q, keys.Done))
				assert.False(t, isMember(t, s, q, keys.Requeue))
				assert.Equal(t, []string{mid}, list(t, s, q, keys.MidsReady))
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "dropped: it is ready")
			}},
		{"done-with-requeue, no pending lock time: the default", state{exists: true, done: true, rq: true, lockTime: 5},
			"circle", StepSkip, "did-requeue", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, int64(testLockMS), hgetInt(t, s, q, keys.LockTimes))
			}},
		{"done-with-requeue, legacy set only: same content", state{exists: true, done: true, legacyRQ: true},
			"circle", StepSkip, "did-requeue", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, "old", hget(t, s, q, keys.Messages))
				assert.False(t, isMember(t, s, q, keys.Requeue))
				assert.False(t, isMember(t, s, q, keys.Done))
			}},
		{"done-awaiting-gc from circle: collected and dropped", state{exists: true, done: true, lock: -5, backoff: -5, attempts: 2, lockTime: 9, rqLockTime: 8},
			"circle", StepSkip, "did-gc", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				for _, k := range []keys.Index{keys.Messages, keys.MessagesRQ, keys.LockTimes, keys.LockTimesRQ, keys.UDTs,
					keys.Locks, keys.Backoffs, keys.NAttempts} {
					assert.Equal(t, "", hget(t, s, q, k), keys.Suffixes[k])
				}
				assert.False(t, isMember(t, s, q, keys.Done))
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"done-awaiting-gc from ready: collected", state{exists: true, done: true},
			"ready", StepSkip, "did-gc", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, "", hget(t, s, q, keys.Messages))
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle))
			}},
		{"queued: handled with the default lock", state{exists: true, udt: -2500}, "ready", StepHandle, "", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, mid, st.ID)
				assert.Equal(t, "old", string(st.Data))
				assert.Equal(t, int64(1), st.Attempt)
				assert.Equal(t, time.Duration(testLockMS)*time.Millisecond, st.LockTime)
				near(t, now-2500, st.FirstEnqueued, "first enqueued")
				assert.Equal(t, st.Now+testLockMS, st.LockedUntil)
				assert.Equal(t, st.LockedUntil, hgetInt(t, s, q, keys.Locks), "lock written")
				assert.Equal(t, int64(1), hgetInt(t, s, q, keys.NAttempts))
				assert.Equal(t, st.LockedUntil, zscore(t, s, q, keys.Due), "due when its lock runs out")
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "in no list")
			}},
		{"queued, own lock time, expired lock: handled again", state{exists: true, lock: -1000, lockTime: 500, attempts: 2, backoff: -1},
			"circle", StepHandle, "", true,
			func(t *testing.T, s *queuetest.Server, q string, now int64, st Step) {
				assert.Equal(t, int64(3), st.Attempt)
				assert.Equal(t, 500*time.Millisecond, st.LockTime)
				assert.Equal(t, st.Now+500, hgetInt(t, s, q, keys.Locks))
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs), "the backoff that ran out is deleted")
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "dropped")
			}},
	}
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		for i, row := range rows {
			q := fmt.Sprintf("poll-%d", i)
			now := s.Now(t)
			put(t, s, q, row.st, now)
			if row.source == "ready" {
				setList(t, s, q, keys.MidsReady, mid)
				setList(t, s, q, keys.MidCircle, EndOfCircle)
			} else {
				setList(t, s, q, keys.MidCircle, EndOfCircle, mid) // mid rightmost: next
			}
			require.NoError(t, s.RDB.Set(ctx, s.Key(q, keys.NDryRuns), 3, 0).Err())
			st := onePoll(t, s, q)
			assert.Equal(t, row.kind, st.Kind, row.name)
			assert.Equal(t, row.reason, st.Reason, row.name)
			ndry, err := s.RDB.Get(ctx, s.Key(q, keys.NDryRuns)).Int64()
			require.NoError(t, err)
			if row.useful {
				assert.Equal(t, int64(0), ndry, "%s: ndry-runs reset", row.name)
			} else {
				assert.Equal(t, int64(3), ndry, "%s: ndry-runs untouched", row.name)
			}
			if row.check != nil {
				t.Run(row.name, func(t *testing.T) { row.check(t, s, q, now, st) })
			}
		}
	})
}

// TestSpecPollOrderAndBatch: mids-ready first, and a batched poll is single
// polls back to back, ending at the first sleep.
func TestSpecPollOrderAndBatch(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		for _, id := range []string{"c1", "r1"} {
			_, err := enqueue(ctx, s, q, id, &EnqueueMessage{ID: id})
			require.NoError(t, err)
		}
		// Move c1 to the circle, behind the sentinel: only r1 is ready.
		setList(t, s, q, keys.MidsReady, "r1")
		setList(t, s, q, keys.MidCircle, "c1", EndOfCircle)
		st := onePoll(t, s, q)
		require.Equal(t, StepHandle, st.Kind)
		assert.Equal(t, "r1", st.ID, "mids-ready before the circle")

		q2 := q + "-batch"
		for i := range 3 {
			_, err := enqueue(ctx, s, q2, i, nil)
			require.NoError(t, err)
		}
		r, err := poll(ctx, s, q2, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10})
		require.NoError(t, err)
		kinds := make([]StepKind, len(r.Steps))
		for i, s := range r.Steps {
			kinds[i] = s.Kind
		}
		assert.Equal(t, []StepKind{StepHandle, StepHandle, StepHandle, StepSleep}, kinds)
		assert.Equal(t, int64(1), r.Steps[3].NDryRuns, "useful steps reset ndry-runs before the sleep read it")

		r, err = poll(ctx, s, q2, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10, MaxHandles: 1})
		require.NoError(t, err)
		assert.Equal(t, StepSleep, r.Steps[0].Kind, "all three are locked now, in no list but due")
		assert.False(t, r.Steps[0].UntilDue, "their locks run out long after the sleep")
		n, err := s.RDB.ZCard(ctx, s.Key(q2, keys.Due)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(3), n)
	})
}

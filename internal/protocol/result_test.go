package protocol

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file check results (docs/protocol.md §21): kept with
// a success in the outcome's own step, never with another outcome nor a
// success fenced off, once per outcome however often it is sent, bounded
// by count and age, and removed with the message by delete.

// handOut enqueues id and polls until it is handed out.
func handOut(t *testing.T, s *queuetest.Server, q, id string) Step {
	t.Helper()
	mustEnqueue(t, s, q, "content of "+id, &EnqueueMessage{ID: id})
	return pollUntilID(t, s, q, id)
}

// pollUntilID polls until id is handed out.
func pollUntilID(t *testing.T, s *queuetest.Server, q, id string) Step {
	t.Helper()
	for range 20 {
		st := onePoll(t, s, q)
		if st.Kind == StepHandle && st.ID == id {
			return st
		}
	}
	t.Fatalf("%s never handed out", id)
	return Step{}
}

// succeedWith records a success of st with result, under the given bounds.
func succeedWith(t *testing.T, s *queuetest.Server, q string, st Step, result string, a PollArgs) bool {
	t.Helper()
	a.LockTime = testLockMS * time.Millisecond
	a.Completions = []Completion{{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess, Result: []byte(result)}}
	r, err := poll(context.Background(), s, q, a)
	require.NoError(t, err)
	require.Len(t, r.Recorded, 1)
	return r.Recorded[0]
}

func readResult(t *testing.T, s *queuetest.Server, q, id string) ResultRecord {
	t.Helper()
	rec, err := ReadResult(context.Background(), s.RDB, s.Keys(q), id)
	require.NoError(t, err)
	return rec
}

func TestResultKeptWithSuccess(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		assert.Equal(t, ResultRecord{}, readResult(t, s, q, "a"), "none, not pending: never enqueued")

		st := handOut(t, s, q, "a")
		assert.Equal(t, ResultRecord{Pending: true}, readResult(t, s, q, "a"), "locked: pending")
		before := s.Now(t)
		require.True(t, succeedWith(t, s, q, st, "answer of a", PollArgs{}))
		rec := readResult(t, s, q, "a")
		assert.True(t, rec.Found)
		assert.False(t, rec.Pending, "collected")
		assert.Equal(t, "answer of a", string(rec.Data))
		assert.GreaterOrEqual(t, rec.At, before)
		used, err := s.RDB.HGet(ctx, s.Key(q, keys.Features), "results").Result()
		require.NoError(t, err)
		assert.Equal(t, "1", used, "the queue uses results from then on")

		// A success without a result, a retry and a dead letter keep none.
		st = handOut(t, s, q, "b")
		require.True(t, succeedWith(t, s, q, st, "", PollArgs{}))
		st = handOut(t, s, q, "c")
		ok, err := complete(ctx, s, q, []Completion{{ID: "c", LockedUntil: st.LockedUntil, Outcome: OutcomeRetry, Result: []byte("not kept")}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		assert.Equal(t, ResultRecord{Pending: true}, readResult(t, s, q, "c"), "queued again: pending")
		st = pollUntilID(t, s, q, "c")
		ok, err = complete(ctx, s, q, []Completion{{ID: "c", LockedUntil: st.LockedUntil, Outcome: OutcomeDead, Error: "x", Result: []byte("not kept")}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		for _, id := range []string{"b", "c"} {
			assert.Equal(t, ResultRecord{}, readResult(t, s, q, id), id)
		}
		n, err := s.RDB.HLen(ctx, s.Key(q, keys.Results)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "a's alone")

		// A success in a dedupe window keeps its result too.
		st = handOut(t, s, q, "d")
		ok, err = complete(ctx, s, q, []Completion{{ID: "d", LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess,
			Backoff: time.Hour, Result: []byte("answer of d")}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		assert.Equal(t, ResultRecord{Found: true, Data: []byte("answer of d"), At: readResult(t, s, q, "d").At},
			readResult(t, s, q, "d"), "done, in its window: not pending")
	})
}

// TestResultFencedOff: a success whose lock was lost (expired and taken
// by another handling, or the message deleted) writes no result, and a
// resent outcome writes its result once.
func TestResultFencedOff(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		st := handOut(t, s, q, "a")
		stale := st
		stale.LockedUntil--
		assert.False(t, succeedWith(t, s, q, stale, "from a lost lock", PollArgs{}), "lock-lost")
		assert.Equal(t, ResultRecord{Pending: true}, readResult(t, s, q, "a"), "no result written")

		_, err := Delete(ctx, s.RDB, s.Keys(q), []string{"a"})
		require.NoError(t, err)
		assert.False(t, succeedWith(t, s, q, st, "after the delete", PollArgs{}), "lock-lost")
		assert.Equal(t, ResultRecord{}, readResult(t, s, q, "a"))

		// The same call sent twice by one poller (its reply lost): the
		// second answers from the receipt and writes nothing.
		st = handOut(t, s, q, "b")
		a := PollArgs{LockTime: testLockMS * time.Millisecond, Poller: randomToken(), Seq: 1,
			Completions: []Completion{{ID: "b", LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess, Result: []byte("first")}}}
		r, err := Poll(ctx, s.RDB, s.Keys(q), a)
		require.NoError(t, err)
		require.Equal(t, []bool{true}, r.Recorded)
		// Marked, so that a second write would show.
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Results), "b", "1:marked").Err())
		a.Seq = 2
		r, err = Poll(ctx, s.RDB, s.Keys(q), a)
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, r.Recorded, "the first call's answer")
		assert.Equal(t, "marked", string(readResult(t, s, q, "b").Data), "written once")
	})
}

// TestResultNotify: a final outcome of a queue that uses results is
// published on its results channel, once; before the queue uses results,
// nothing is.
func TestResultNotify(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		sub := s.RDB.Subscribe(ctx, s.Key(q, keys.Results))
		defer sub.Close()
		_, err := sub.Receive(ctx)
		require.NoError(t, err)
		notices := sub.Channel()

		st := handOut(t, s, q, "quiet")
		require.True(t, succeedWith(t, s, q, st, "", PollArgs{}), "no result, the queue not using results")
		st = handOut(t, s, q, "a")
		require.True(t, succeedWith(t, s, q, st, "answer", PollArgs{}))
		st = handOut(t, s, q, "b")
		require.True(t, succeedWith(t, s, q, st, "", PollArgs{}))
		bury(t, s, q, "c", PollArgs{LockTime: time.Minute, Sleeps: testSleeps})
		st = handOut(t, s, q, "d")
		r, err := poll(ctx, s, q, PollArgs{LockTime: testLockMS * time.Millisecond,
			Completions: []Completion{{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeCancelled}}})
		require.NoError(t, err)
		require.True(t, r.Cancelled[0])
		var got []string
		for len(got) < 4 {
			select {
			case m := <-notices:
				got = append(got, m.Payload)
			case <-time.After(30 * time.Second):
				t.Fatalf("notices so far: %v", got)
			}
		}
		assert.Equal(t, []string{"a", "b", "c", "d"}, got, "the success that kept a result, then every final outcome, a cancel too")
	})
}

func TestResultBounds(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		bounds := PollArgs{ResultMaxCount: 3}
		for i := range 5 {
			id := fmt.Sprintf("r%d", i)
			require.True(t, succeedWith(t, s, q, handOut(t, s, q, id), "answer of "+id, bounds))
		}
		ids, err := s.RDB.ZRange(ctx, s.Key(q, keys.ResultsIndex), 0, -1).Result()
		require.NoError(t, err)
		assert.Len(t, ids, 3)
		n, err := s.RDB.HLen(ctx, s.Key(q, keys.Results)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(3), n, "the oldest beyond the count dropped")
		assert.Equal(t, ResultRecord{}, readResult(t, s, q, "r0"))
		assert.Equal(t, "answer of r4", string(readResult(t, s, q, "r4").Data))

		// The bound by age: r2 recorded more than the age ago.
		require.NoError(t, s.RDB.ZAdd(ctx, s.Key(q, keys.ResultsIndex), redis.Z{Score: float64(s.Now(t) - 60000), Member: "r2"}).Err())
		require.True(t, succeedWith(t, s, q, handOut(t, s, q, "r5"), "answer of r5", PollArgs{ResultMaxAge: 30 * time.Second}))
		assert.Equal(t, ResultRecord{}, readResult(t, s, q, "r2"), "too old")
		for _, id := range []string{"r3", "r4", "r5"} {
			assert.True(t, readResult(t, s, q, id).Found, id)
		}
	})
}

// TestResultAndTheID: delete removes the result; a message enqueued again
// under the id is pending, the old result not answered until the new
// success replaces it.
func TestResultAndTheID(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		require.True(t, succeedWith(t, s, q, handOut(t, s, q, "a"), "old", PollArgs{}))
		mustEnqueue(t, s, q, "again", &EnqueueMessage{ID: "a"})
		assert.Equal(t, ResultRecord{Pending: true}, readResult(t, s, q, "a"), "the old result is an earlier message's")
		require.True(t, succeedWith(t, s, q, pollUntilID(t, s, q, "a"), "new", PollArgs{}))
		assert.Equal(t, "new", string(readResult(t, s, q, "a").Data))

		_, err := Delete(ctx, s.RDB, s.Keys(q), []string{"a"})
		require.NoError(t, err)
		assert.Equal(t, ResultRecord{}, readResult(t, s, q, "a"))
		n, err := s.RDB.ZCard(ctx, s.Key(q, keys.ResultsIndex)).Result()
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}

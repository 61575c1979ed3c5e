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

// historySum adds up the queue's whole history (the last day).
func historySum(t *testing.T, s *queuetest.Server, q string) HistoryMinute {
	t.Helper()
	ms, _, err := History(context.Background(), s.RDB, s.Keys(q), 0)
	require.NoError(t, err)
	var sum HistoryMinute
	for _, m := range ms {
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	return sum
}

// TestHistory: docs/protocol.md §17. Every outcome recorded counts once in
// the minute of the server's clock, by kind; a release, an outcome whose
// lock was lost and an outcome sent again after a lost reply count
// nothing; the history answers every minute from since to now.
func TestHistory(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)

		ms, now, err := History(ctx, s.RDB, s.Keys(q), 0)
		require.NoError(t, err)
		near(t, s.Now(t), now, "the server's time")
		require.Len(t, ms, 1440, "a day of minutes, none recorded")
		assert.Equal(t, now/60000*60000, ms[1439].Start, "the last is the current minute")
		assert.Equal(t, ms[1439].Start-1439*60000, ms[0].Start)
		assert.Equal(t, HistoryMinute{Start: ms[0].Start}, ms[0])
		ms, _, err = History(ctx, s.RDB, s.Keys(q), now)
		require.NoError(t, err)
		require.Len(t, ms, 1, "since now: the current minute")
		ms, _, err = History(ctx, s.RDB, s.Keys(q), now+3600000)
		require.NoError(t, err)
		require.Len(t, ms, 1, "since a time to come: the current minute")
		n, err := s.RDB.Exists(ctx, s.Key(q, keys.History)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "reading writes nothing")

		for i := range 5 {
			id := fmt.Sprint("m", i)
			mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: id})
		}
		args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 5, Poller: "p", Seq: 1}
		r, err := Poll(ctx, s.RDB, s.Keys(q), args)
		require.NoError(t, err)
		require.Len(t, r.Steps, 5)
		var cs []Completion
		for i, oc := range []Outcome{OutcomeSuccess, OutcomeSuccess, OutcomeRetry, OutcomeDead, OutcomeRelease} {
			st := r.Steps[i]
			require.Equal(t, StepHandle, st.Kind)
			cs = append(cs, Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: oc, Backoff: time.Hour, Error: "e"})
		}
		cs = append(cs, Completion{ID: r.Steps[0].ID, LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess})
		args.MaxSteps, args.Completions, args.Seq, args.Confirmed = 0, cs, 2, 1
		// The reply of this call is lost: the call is sent again, as the
		// next call of its poller, with the same outcomes first.
		_, err = Poll(ctx, s.RDB, s.Keys(q), args)
		require.NoError(t, err)
		args.Seq = 3
		r, err = Poll(ctx, s.RDB, s.Keys(q), args)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true, true, true, false}, r.Recorded)
		assert.Equal(t, HistoryMinute{Processed: 4, Failed: 2, Dead: 1}, historySum(t, s, q))
	})
}

// TestHistoryTrim: the history keeps a day of minutes; older ones are
// deleted as minutes pass, and all at once when the queue saw no outcome
// for a day. It runs on miniredis, whose clock a test moves.
func TestHistoryTrim(t *testing.T) {
	s := queuetest.MiniServer(t)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	n := 0
	at := func(d time.Duration) { // one success at t0 + d
		t.Helper()
		s.Mini.SetTime(t0.Add(d))
		n++
		id := fmt.Sprint("m", n)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: id})
		st := onePoll(t, s, q)
		require.Equal(t, StepHandle, st.Kind)
		ok, err := complete(ctx, s, q, []Completion{{ID: id, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
	}
	fields := func() []string {
		t.Helper()
		fs, err := s.RDB.HKeys(ctx, s.Key(q, keys.History)).Result()
		require.NoError(t, err)
		return fs
	}
	m0 := t0.Unix() / 60
	mf := func(m int64) string { return fmt.Sprint(m, "p") }

	at(0)
	at(time.Second)
	assert.ElementsMatch(t, []string{"last", mf(m0)}, fields())
	assert.Equal(t, "2", queuetest.HGet(t, s.RDB, s.Key(q, keys.History), mf(m0)), "one field a minute, counted")
	at(time.Minute)
	at(2 * time.Minute)
	assert.ElementsMatch(t, []string{"last", mf(m0), mf(m0 + 1), mf(m0 + 2)}, fields())
	at(24*time.Hour - time.Minute)
	assert.ElementsMatch(t, []string{"last", mf(m0), mf(m0 + 1), mf(m0 + 2), mf(m0 + 1439)}, fields(),
		"a day less a minute: all kept")
	ms, _, err := History(ctx, s.RDB, s.Keys(q), 0)
	require.NoError(t, err)
	require.Len(t, ms, 1440)
	assert.Equal(t, HistoryMinute{Start: m0 * 60000, Processed: 2}, ms[0], "the oldest minute answered")
	at(24*time.Hour + time.Minute)
	assert.ElementsMatch(t, []string{"last", mf(m0 + 2), mf(m0 + 1439), mf(m0 + 1441)}, fields(),
		"the minutes that left the day are deleted")
	at(3 * 24 * time.Hour)
	assert.ElementsMatch(t, []string{"last", mf(m0 + 3*1440)}, fields(), "a day or more later: all deleted")
	at(2 * 24 * time.Hour)
	assert.ElementsMatch(t, []string{"last", mf(m0 + 3*1440)}, fields(),
		"a clock gone back by a day or more writes nothing")
	at(3*24*time.Hour - time.Minute)
	assert.ElementsMatch(t, []string{"last", mf(m0 + 3*1440), mf(m0 + 3*1440 - 1)}, fields(),
		"a clock gone back by less than a day writes its minute")
	assert.Equal(t, fmt.Sprint(m0+3*1440), queuetest.HGet(t, s.RDB, s.Key(q, keys.History), "last"), "last stays")
	ms, _, err = History(ctx, s.RDB, s.Keys(q), 0)
	require.NoError(t, err)
	assert.Len(t, ms, 1440)
}

// TestAttemptErrors: docs/protocol.md §17. A retry after a failure keeps
// its error with the message, the latest five, each cut to 1 KiB; the
// dead letter keeps them with the last one; they go with the message
// (success, delete), and an entry left by
// an earlier life of the id is not taken for this one's.
func TestAttemptErrors(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		kept := func(id string) bool {
			t.Helper()
			ok, err := s.RDB.HExists(ctx, s.Key(q, keys.AttemptErrors), id).Result()
			require.NoError(t, err)
			return ok
		}
		// handle takes id (queued now) and records outcome with err.
		handle := func(id string, oc Outcome, err string) {
			t.Helper()
			st := onePoll(t, s, q)
			for i := 0; st.Kind == StepSkip && i < 10; i++ { // ids of messages gone
				st = onePoll(t, s, q)
			}
			require.Equal(t, StepHandle, st.Kind)
			require.Equal(t, id, st.ID)
			ok, e := complete(ctx, s, q, []Completion{{ID: id, LockedUntil: st.LockedUntil, Outcome: oc, Error: err}})
			require.NoError(t, e)
			require.Equal(t, []bool{true}, ok)
		}

		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "a"})
		long := string(make([]byte, 3000))
		for i := 1; i <= 7; i++ {
			e := fmt.Sprint("err ", i)
			if i == 6 {
				e = long
			}
			handle("a", OutcomeRetry, e)
		}
		handle("a", OutcomeRetry, "") // a retry asked for, no failure
		assert.True(t, kept("a"))
		// A message in the queue answers them when asked (ReadErrors).
		readErrors := func(id string) []string {
			t.Helper()
			_, rs, err := ReadMessages(ctx, s.RDB, s.Keys(q), ReadErrors, []string{id})
			require.NoError(t, err)
			var out []string
			for _, e := range rs[0].AttemptErrors {
				out = append(out, fmt.Sprint(e.Attempt, ":", len(e.Error)))
			}
			return out
		}
		assert.Equal(t, []string{"3:5", "4:5", "5:5", "6:1024", "7:5"}, readErrors("a"))
		_, rs, err := ReadMessages(ctx, s.RDB, s.Keys(q), "", []string{"a"})
		require.NoError(t, err)
		assert.Nil(t, rs[0].AttemptErrors, "read only when asked for")
		handle("a", OutcomeDead, "last")
		assert.False(t, kept("a"), "gone with the message")
		d, ok, err := DeadLetter(ctx, s.RDB, s.Keys(q), "a")
		require.NoError(t, err)
		require.True(t, ok)
		var got []string
		for _, e := range d.AttemptErrors {
			got = append(got, fmt.Sprint(e.Attempt, ":", len(e.Error)))
			assert.LessOrEqual(t, e.At, d.Died)
			assert.Greater(t, e.At, int64(0))
		}
		assert.Equal(t, []string{"4:5", "5:5", "6:1024", "7:5", "9:4"}, got, "the latest five, cut to 1 KiB")
		assert.Equal(t, "last", d.AttemptErrors[4].Error)
		assert.Equal(t, "err 7", d.AttemptErrors[3].Error)

		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "b"})
		handle("b", OutcomeRetry, "b1")
		assert.True(t, kept("b"))
		handle("b", OutcomeSuccess, "")
		assert.False(t, kept("b"), "collected with the message")

		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "c"})
		handle("c", OutcomeRetry, "c1")
		_, err = Delete(ctx, s.RDB, s.Keys(q), []string{"c"})
		require.NoError(t, err)
		assert.False(t, kept("c"), "deleted with the message")

		// An entry an earlier life of the id left (as after a Carmine
		// worker's collection): attempts 2 and 3 of that life.
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "d"})
		stale := "\x01\x00\x002\x01\x00\x001\x03\x00\x00old\x01\x00\x003\x01\x00\x001\x03\x00\x00old"
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.AttemptErrors), "d", stale).Err())
		assert.Nil(t, readErrors("d"), "the earlier life's errors are not this one's")
		handle("d", OutcomeDead, "new")
		d, _, err = DeadLetter(ctx, s.RDB, s.Keys(q), "d")
		require.NoError(t, err)
		require.Len(t, d.AttemptErrors, 1, "the earlier life's errors dropped")
		assert.Equal(t, AttemptError{Attempt: 1, At: d.Died, Error: "new"}, d.AttemptErrors[0])
	})
}

package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of docs/protocol.md §11: the due index, dedupe windows,
// quarantine, dead letters and the counts.

func zaddMid(t *testing.T, s *queuetest.Server, q string, k keys.Index, at int64) {
	t.Helper()
	require.NoError(t, s.RDB.ZAdd(context.Background(), s.Key(q, k), redis.Z{Score: float64(at), Member: mid}).Err())
}

// TestSpecWake: what a poll does with a due or windows entry that fell
// due, one row per status of its mid.
func TestSpecWake(t *testing.T) {
	type check func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply)
	handled := func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
		require.Equal(t, StepHandle, r.Steps[0].Kind, "taken back at once, ahead of the lists")
		assert.Equal(t, mid, r.Steps[0].ID)
		assert.Equal(t, r.Steps[0].LockedUntil, zscore(t, s, q, keys.Due), "due again, at its new lock")
	}
	rows := []struct {
		name  string
		st    state
		index keys.Index
		check check
	}{
		{"lock ran out", state{exists: true, lock: -5}, keys.Due, handled},
		{"backoff ended", state{exists: true, backoff: -5}, keys.Due,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				handled(t, s, q, now, r)
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs), "the ended backoff deleted")
			}},
		{"lock renewed", state{exists: true, lock: 600000}, keys.Due,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.Equal(t, StepSleep, r.Steps[0].Kind)
				assert.Equal(t, hgetInt(t, s, q, keys.Locks), zscore(t, s, q, keys.Due), "due at the renewed lock")
			}},
		{"backoff moved on", state{exists: true, backoff: 600000}, keys.Due,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.Equal(t, StepSleep, r.Steps[0].Kind)
				assert.Equal(t, hgetInt(t, s, q, keys.Backoffs), zscore(t, s, q, keys.Due))
			}},
		{"gone", state{}, keys.Due,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.False(t, inZSet(t, s, q, keys.Due))
			}},
		{"done by a Carmine worker", state{exists: true, done: true, lock: -5}, keys.Due,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected")
				assert.False(t, inZSet(t, s, q, keys.Due))
			}},
		{"window ended", state{exists: true, done: true, backoff: -5, attempts: 2}, keys.Windows,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected")
				assert.Equal(t, "", hget(t, s, q, keys.NAttempts))
				assert.False(t, inZSet(t, s, q, keys.Windows))
			}},
		{"window ended, requeue pending", state{exists: true, done: true, backoff: -5, rq: true}, keys.Windows,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				require.Equal(t, StepHandle, r.Steps[0].Kind, "the requeue is handed out")
				assert.Equal(t, "rq", string(r.Steps[0].Data))
				assert.False(t, inZSet(t, s, q, keys.Windows))
			}},
		{"window moved on", state{exists: true, done: true, backoff: 600000}, keys.Windows,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.Equal(t, StatusDoneWithBackoff, statusOf(t, s, q, mid))
				assert.Equal(t, hgetInt(t, s, q, keys.Backoffs), zscore(t, s, q, keys.Windows))
			}},
		{"window of a message queued again", state{exists: true}, keys.Windows,
			func(t *testing.T, s *queuetest.Server, q string, now int64, r PollReply) {
				assert.False(t, inZSet(t, s, q, keys.Windows))
				assert.Equal(t, StatusQueued, statusOf(t, s, q, mid), "left as it is (it is in no list: a damaged queue)")
			}},
	}
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		for i, row := range rows {
			q := fmt.Sprintf("wake-%d", i)
			now := s.Now(t)
			put(t, s, q, row.st, now)
			setList(t, s, q, keys.MidCircle, EndOfCircle)
			zaddMid(t, s, q, row.index, now-1)
			r, err := poll(ctx, s, q, PollArgs{LockTime: testLockMS * time.Millisecond, Sleeps: testSleeps, MaxSteps: 1})
			require.NoError(t, err)
			require.Len(t, r.Steps, 1)
			t.Run(row.name, func(t *testing.T) { row.check(t, s, q, now, r) })
		}
	})
}

// TestSleepUntilDue: a sleep step ends when the earliest due entry falls
// due, if that comes before the end-of-queue sleep would end.
func TestSleepUntilDue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		long := [5]time.Duration{time.Hour, time.Hour, time.Hour, time.Hour, time.Hour}
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, InitialBackoff: 2 * time.Second})
		r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: long, MaxSteps: 10})
		require.NoError(t, err)
		last := r.Steps[len(r.Steps)-1]
		require.Equal(t, StepSleep, last.Kind)
		assert.True(t, last.UntilDue)
		assert.Greater(t, last.Sleep, time.Second)
		assert.LessOrEqual(t, last.Sleep, 2*time.Second)

		r, err = poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10})
		require.NoError(t, err)
		last = r.Steps[len(r.Steps)-1]
		assert.False(t, last.UntilDue, "the end-of-queue sleep ends first")
		assert.Equal(t, testSleeps[1], last.Sleep)
	})
}

// TestQuarantine: a message handed out QuarantineAfter times without an
// outcome is buried by the next poll that would hand it out; retry
// outcomes and releases do not count.
func TestQuarantine(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid})
		args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1, QuarantineAfter: 2}
		take := func() Step {
			t.Helper()
			r, err := poll(ctx, s, q, args)
			require.NoError(t, err)
			return r.Steps[0]
		}
		expire := func() { // as if its handler's process died
			t.Helper()
			require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Locks), mid, s.Now(t)-1).Err())
			zaddMid(t, s, q, keys.Due, s.Now(t)-1)
		}
		st := take()
		require.Equal(t, StepHandle, st.Kind)
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRetry}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		st = take()
		require.Equal(t, StepHandle, st.Kind, "a retry is an outcome")
		ok, err = complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeRelease}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		for i := range 2 {
			st = take()
			require.Equal(t, StepHandle, st.Kind, "lost hand-out %d", i+1)
			expire()
		}
		st = take()
		assert.Equal(t, Step{Kind: StepSkip, Reason: "quarantined"}, st)
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid))
		d, ok2, err := DeadLetter(ctx, s.RDB, s.Keys(q), mid)
		require.NoError(t, err)
		require.True(t, ok2)
		assert.Equal(t, "quarantined", d.Reason)
		assert.Equal(t, int64(3), d.Attempts, "the hand-outs but the released one, this last one not among them")
		assert.Contains(t, d.Error, "2 times")
		assert.Equal(t, "x", string(d.Data))
		assert.Equal(t, HistoryMinute{Processed: 1, Failed: 1, Dead: 1}, historySum(t, s, q),
			"the retry, and the burial in the history (§17)")
	})
}

// bury makes mid a dead letter by a handling whose outcome is 'dead'.
func bury(t *testing.T, s *queuetest.Server, q, id string, args PollArgs) {
	t.Helper()
	ctx := context.Background()
	mustEnqueue(t, s, q, "content of "+id, &EnqueueMessage{ID: id})
	for range 20 {
		args.MaxSteps, args.Completions = 1, nil
		r, err := poll(ctx, s, q, args)
		require.NoError(t, err)
		if st := r.Steps[0]; st.Kind == StepHandle && st.ID == id {
			args.MaxSteps = 0
			args.Completions = []Completion{{ID: id, LockedUntil: st.LockedUntil, Outcome: OutcomeDead, Error: "failed: " + id}}
			r, err := poll(ctx, s, q, args)
			require.NoError(t, err)
			require.Equal(t, []bool{true}, r.Recorded)
			return
		}
	}
	t.Fatalf("%s never handed out", id)
}

// TestDeadLetters: listing newest first, paging, the bounds by count and
// by age, requeue and delete.
func TestDeadLetters(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, DeadMaxCount: 3}
		for i := range 5 {
			bury(t, s, q, fmt.Sprintf("d%d", i), args)
		}
		page, err := DeadLetterPage(ctx, s.RDB, s.Keys(q), 10, -1, "")
		require.NoError(t, err)
		assert.Len(t, page, 3, "the oldest beyond the count dropped")
		ids := func(rs []DeadRecord) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		assert.Equal(t, []string{"d4", "d3", "d2"}, ids(page), "newest first")
		assert.Equal(t, "failed: d4", page[0].Error)
		assert.Equal(t, "content of d4", string(page[0].Data))
		page, err = DeadLetterPage(ctx, s.RDB, s.Keys(q), 1, page[0].Died, page[0].ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"d3"}, ids(page))
		n, err := s.RDB.HLen(ctx, s.Key(q, keys.Dead)).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(3), n, "their records went too")

		// The bound by age: d2..d4 died more than the age ago.
		require.NoError(t, s.RDB.ZAdd(ctx, s.Key(q, keys.DeadIndex), redis.Z{Score: float64(s.Now(t) - 60000), Member: "d2"}).Err())
		bury(t, s, q, "d5", PollArgs{LockTime: time.Minute, Sleeps: testSleeps, DeadMaxAge: 30 * time.Second})
		page, err = DeadLetterPage(ctx, s.RDB, s.Keys(q), 10, -1, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"d5", "d4", "d3"}, ids(page))

		codes, err := RequeueDead(ctx, s.RDB, s.Keys(q), []string{"d3", "nope"})
		require.NoError(t, err)
		assert.Equal(t, []Code{Requeued, DeadMissing}, codes)
		assert.Equal(t, StatusQueued, statusOf(t, s, q, "d3"), "a fresh message")
		mustEnqueue(t, s, q, "again", &EnqueueMessage{ID: "d4"})
		codes, err = RequeueDead(ctx, s.RDB, s.Keys(q), []string{"d4"})
		require.NoError(t, err)
		assert.Equal(t, []Code{DeadExists}, codes, "the queue holds d4 already")
		_, ok, err := DeadLetter(ctx, s.RDB, s.Keys(q), "d4")
		require.NoError(t, err)
		assert.True(t, ok, "kept")

		del, err := DeleteDead(ctx, s.RDB, s.Keys(q), []string{"d5", "d5"})
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false}, del)
		all, err := DeleteAllDead(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		assert.Equal(t, int64(1), all)
		c, err := QueueCounts(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		assert.Equal(t, int64(0), c.Dead)
	})
}

// TestDeadLetterPageCursor: a page starts after the cursor's letter, by
// the time it died and then by id in byte order (as dead-index orders
// letters of one time), whether or not that letter is still there, so
// that paging never repeats nor skips a letter that stays.
func TestDeadLetterPageCursor(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps}
		// Ids whose byte order differs from a locale's collation.
		ids := []string{"B", "a", "\xc3\xa9", "Z", "b", "\xff", "A", "aa"}
		for _, id := range ids {
			bury(t, s, q, id, args)
		}
		// Two times, four letters each: every page boundary below falls
		// among letters of one time.
		for i, id := range ids {
			score := float64(1000 + i/4)
			require.NoError(t, s.RDB.ZAdd(ctx, s.Key(q, keys.DeadIndex), redis.Z{Score: score, Member: id}).Err())
		}
		want := []string{"b", "\xff", "A", "aa", "B", "a", "\xc3\xa9", "Z"}
		// (newest time first; within a time, ids in descending byte order)
		slices.SortFunc(want[:4], func(x, y string) int { return strings.Compare(y, x) })
		slices.SortFunc(want[4:], func(x, y string) int { return strings.Compare(y, x) })
		for _, limit := range []int{1, 2, 3, 8} {
			var got []string
			died, after := int64(-1), ""
			for range 10 {
				page, err := DeadLetterPage(ctx, s.RDB, s.Keys(q), limit, died, after)
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				for _, r := range page {
					got = append(got, r.ID)
				}
				died, after = page[len(page)-1].Died, page[len(page)-1].ID
			}
			assert.Equal(t, want, got, "limit %d", limit)
		}

		// The cursor's letter gone: the page starts where it stood.
		page, err := DeadLetterPage(ctx, s.RDB, s.Keys(q), 2, -1, "")
		require.NoError(t, err)
		require.Equal(t, want[:2], []string{page[0].ID, page[1].ID})
		del, err := DeleteDead(ctx, s.RDB, s.Keys(q), []string{want[1]})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, del)
		page, err = DeadLetterPage(ctx, s.RDB, s.Keys(q), 2, 1001, want[1])
		require.NoError(t, err)
		assert.Equal(t, want[2:4], []string{page[0].ID, page[1].ID})
		// And a cursor past the oldest answers nothing.
		page, err = DeadLetterPage(ctx, s.RDB, s.Keys(q), 2, 1000, "")
		require.NoError(t, err)
		assert.Empty(t, page)
	})
}

// TestCountsOnceEach: the dedupe pattern: ids in their dedupe
// window and new messages count once each.
func TestCountsOnceEach(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		for i := range 7 {
			id := fmt.Sprintf("w%d", i)
			mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: id})
			r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
			require.NoError(t, err)
			st := r.Steps[0]
			require.Equal(t, StepHandle, st.Kind)
			ok, err := complete(ctx, s, q, []Completion{{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess, Backoff: time.Hour}})
			require.NoError(t, err)
			require.Equal(t, []bool{true}, ok)
		}
		for i := range 3 {
			mustEnqueue(t, s, q, "y", nil)
			_ = i
		}
		mustEnqueue(t, s, q, "later", &EnqueueMessage{InitialBackoff: time.Hour})
		c, err := QueueCounts(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		assert.Equal(t, Counts{Total: 11, Done: 7, Backoff: 1, Queued: 3}, c)
	})
}

// TestEnqueueAt: an absolute time, by the server's clock.
func TestEnqueueAt(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		now := s.Now(t)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, At: now + 60000, InitialBackoff: time.Hour})
		near(t, now+60000, hgetInt(t, s, q, keys.Backoffs), "At, not InitialBackoff")
		assert.Equal(t, hgetInt(t, s, q, keys.Backoffs), zscore(t, s, q, keys.Due))
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "past", At: now - 60000})
		assert.Equal(t, StatusQueued, statusOf(t, s, q, "past"), "past: ready now")
	})
}

// TestCircleEntryIndexed: with IndexOnly (no Carmine worker reads the
// queue), a mid on the circle whose due entry is still to come leaves the
// circle for the index at the cost of one read; one whose due entry fell
// due is decided as always. Without IndexOnly, its status decides: a
// Carmine worker's lock or outcome, or a Carmine enqueue's reset, leaves
// due behind (issue 22).
func TestCircleEntryIndexed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		indexOnly := PollArgs{LockTime: testLockMS * time.Millisecond, Sleeps: testSleeps, MaxSteps: 1, IndexOnly: true}
		q := queuetest.QueueName(t)
		now := s.Now(t)
		put(t, s, q, state{exists: true, backoff: 3600000}, now)
		zaddMid(t, s, q, keys.Due, now+3600000)
		setList(t, s, q, keys.MidCircle, EndOfCircle, mid)
		r, err := poll(ctx, s, q, indexOnly)
		require.NoError(t, err)
		assert.Equal(t, Step{Kind: StepSkip, Reason: "indexed"}, r.Steps[0])
		assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "dropped from the circle")
		assert.True(t, inZSet(t, s, q, keys.Due), "still indexed")
		assert.Equal(t, StatusQueuedWithBackoff, statusOf(t, s, q, mid), "its status unchanged")

		q = queuetest.QueueName(t) + "-due"
		put(t, s, q, state{exists: true, lock: -5}, now)
		zaddMid(t, s, q, keys.Due, now-1)
		setList(t, s, q, keys.MidCircle, EndOfCircle, mid)
		r, err = poll(ctx, s, q, indexOnly)
		require.NoError(t, err)
		assert.Equal(t, StepHandle, r.Steps[0].Kind, "fallen due: handed out")

		q = queuetest.QueueName(t) + "-carmine"
		put(t, s, q, state{exists: true}, now)  // a Carmine worker's retry released it
		zaddMid(t, s, q, keys.Due, now+3600000) // at that worker's lock's expiry
		setList(t, s, q, keys.MidCircle, EndOfCircle, mid)
		assert.Equal(t, StepHandle, onePoll(t, s, q).Kind, "without IndexOnly the status decides")
	})
}

// TestEnqueueIndexOnly: with IndexOnly (no Carmine worker reads the
// queue), a delayed message waits in due alone, off mid-circle, and is
// handed out when it falls due all the same.
func TestEnqueueIndexOnly(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		answers := EnqueuePipelined(ctx, s.RDB, s.Keys(q), []EnqueueCall{{Token: randomToken(), Keep: time.Minute, IndexOnly: true,
			Messages: []EnqueueMessage{{ID: mid, Data: []byte("x"), InitialBackoff: time.Hour}}}})
		require.NoError(t, answers[0].Err)
		require.Equal(t, []Code{Added}, answers[0].Codes)
		assert.Equal(t, StatusQueuedWithBackoff, statusOf(t, s, q, mid))
		assert.NotContains(t, list(t, s, q, keys.MidCircle), mid, "off the circle")
		assert.True(t, inZSet(t, s, q, keys.Due))

		zaddMid(t, s, q, keys.Due, s.Now(t)-1)
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Backoffs), mid, s.Now(t)-1).Err())
		st := onePoll(t, s, q)
		assert.Equal(t, StepHandle, st.Kind, "handed out once due")
	})
}

package protocol

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file and spec_poll_test.go hold one row per line of
// docs/protocol.md §2, §3 and §4. Each row builds a message's state by
// writing the queue's keys directly, with times relative to the server's
// clock, runs one call, and checks the answer and the state after it.
// Every row runs on miniredis, a real redis-server and a Redis Cluster.

const mid = "m"

// state describes one message's entries. Times are relative to the
// server's now, in ms; 0 means no entry.
type state struct {
	exists     bool   // messages[mid] = content
	content    string // default "old"
	done       bool   // in done
	lock       int64  // locks[mid] = now + lock
	backoff    int64  // backoffs[mid] = now + backoff
	rq         bool   // messages-rq[mid] = "rq"
	rqLockTime int64  // lock-times-rq[mid]
	legacyRQ   bool   // in the legacy requeue set
	lockTime   int64  // lock-times[mid]
	attempts   int64  // nattempts[mid]
	udt        int64  // udts[mid] = now + udt (when exists; default -60000)
}

// put writes st for mid in queue q.
func put(t *testing.T, s *queuetest.Server, q string, st state, now int64) {
	t.Helper()
	ctx := context.Background()
	r := s.RDB
	if st.exists {
		content := st.content
		if content == "" {
			content = "old"
		}
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.Messages), mid, content).Err())
		udt := st.udt
		if udt == 0 {
			udt = -60000
		}
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.UDTs), mid, now+udt).Err())
	}
	if st.done {
		require.NoError(t, r.SAdd(ctx, s.Key(q, keys.Done), mid).Err())
	}
	if st.lock != 0 {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.Locks), mid, now+st.lock).Err())
	}
	if st.backoff != 0 {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.Backoffs), mid, now+st.backoff).Err())
	}
	if st.rq {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.MessagesRQ), mid, "rq").Err())
	}
	if st.rqLockTime != 0 {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.LockTimesRQ), mid, st.rqLockTime).Err())
	}
	if st.legacyRQ {
		require.NoError(t, r.SAdd(ctx, s.Key(q, keys.Requeue), mid).Err())
	}
	if st.lockTime != 0 {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.LockTimes), mid, st.lockTime).Err())
	}
	if st.attempts != 0 {
		require.NoError(t, r.HSet(ctx, s.Key(q, keys.NAttempts), mid, st.attempts).Err())
	}
}

// hget, hgetInt, isMember and list read mid's entry of one key of q, or
// the whole list (queuetest).
func hget(t *testing.T, s *queuetest.Server, q string, k keys.Index) string {
	t.Helper()
	return queuetest.HGet(t, s.RDB, s.Key(q, k), mid)
}

func hgetInt(t *testing.T, s *queuetest.Server, q string, k keys.Index) int64 {
	t.Helper()
	return queuetest.HGetInt(t, s.RDB, s.Key(q, k), mid)
}

func isMember(t *testing.T, s *queuetest.Server, q string, k keys.Index) bool {
	t.Helper()
	return queuetest.IsMember(t, s.RDB, s.Key(q, k), mid)
}

// zscore reads mid's score in the sorted set k of q, 0 when absent.
func zscore(t *testing.T, s *queuetest.Server, q string, k keys.Index) int64 {
	t.Helper()
	v, err := s.RDB.ZScore(context.Background(), s.Key(q, k), mid).Result()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	require.NoError(t, err)
	return int64(v)
}

// inZSet tells whether mid is in the sorted set k of q.
func inZSet(t *testing.T, s *queuetest.Server, q string, k keys.Index) bool {
	t.Helper()
	_, err := s.RDB.ZScore(context.Background(), s.Key(q, k), mid).Result()
	if errors.Is(err, redis.Nil) {
		return false
	}
	require.NoError(t, err)
	return true
}

func list(t *testing.T, s *queuetest.Server, q string, k keys.Index) []string {
	t.Helper()
	return queuetest.List(t, s.RDB, s.Key(q, k))
}

func setList(t *testing.T, s *queuetest.Server, q string, k keys.Index, elems ...string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.RDB.Del(ctx, s.Key(q, k)).Err())
	if len(elems) > 0 {
		require.NoError(t, s.RDB.RPush(ctx, s.Key(q, k), elems).Err())
	}
}

// near asserts that a time in ms is within a few seconds of want (the
// server's clock moves while the test runs).
func near(t *testing.T, want, got int64, what string) {
	t.Helper()
	assert.InDelta(t, want, got, 5000, what)
}

// TestSpecStatus: docs/protocol.md §2, one row per status and flag combination.
func TestSpecStatus(t *testing.T) {
	rows := []struct {
		name string
		st   state
		want string
	}{
		{"not in messages", state{}, StatusNone},
		{"requeue pending but no message", state{rq: true, done: true}, StatusNone},
		{"queued", state{exists: true}, StatusQueued},
		{"queued, expired lock", state{exists: true, lock: -1000}, StatusQueued},
		{"queued, expired backoff", state{exists: true, backoff: -1000}, StatusQueued},
		{"queued, requeue flag ignored", state{exists: true, rq: true}, StatusQueued},
		{"queued-with-backoff", state{exists: true, backoff: 3600000}, StatusQueuedWithBackoff},
		{"queued-with-backoff, expired lock", state{exists: true, lock: -1000, backoff: 3600000}, StatusQueuedWithBackoff},
		{"locked", state{exists: true, lock: 3600000}, StatusLocked},
		{"locked, backoff ignored", state{exists: true, lock: 3600000, backoff: 3600000}, StatusLocked},
		{"locked-with-requeue", state{exists: true, lock: 3600000, rq: true}, StatusLockedWithRequeue},
		{"locked-with-requeue, legacy set", state{exists: true, lock: 3600000, legacyRQ: true}, StatusLockedWithRequeue},
		{"done-awaiting-gc", state{exists: true, done: true}, StatusDoneAwaitingGC},
		{"done-awaiting-gc, expired backoff", state{exists: true, done: true, backoff: -1000}, StatusDoneAwaitingGC},
		{"done-awaiting-gc, lock ignored", state{exists: true, done: true, lock: 3600000}, StatusDoneAwaitingGC},
		{"done-with-backoff", state{exists: true, done: true, backoff: 3600000}, StatusDoneWithBackoff},
		{"done-with-requeue", state{exists: true, done: true, rq: true}, StatusDoneWithRequeue},
		{"done-with-requeue, in backoff", state{exists: true, done: true, rq: true, backoff: 3600000}, StatusDoneWithRequeue},
		{"done-with-requeue, legacy set", state{exists: true, done: true, legacyRQ: true}, StatusDoneWithRequeue},
	}
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		for i, row := range rows {
			q := fmt.Sprintf("status-%d", i)
			put(t, s, q, row.st, s.Now(t))
			got, err := messageStatus(context.Background(), s, q, mid)
			require.NoError(t, err)
			assert.Equal(t, row.want, got, row.name)
		}
	})
}

// TestSpecEnqueue: docs/protocol.md §3, one row per line of the table and per
// branch within a line.
func TestSpecEnqueue(t *testing.T) {
	type check func(t *testing.T, s *queuetest.Server, q string, now int64)
	unchanged := func(t *testing.T, s *queuetest.Server, q string, now int64) {
		assert.Equal(t, "old", hget(t, s, q, keys.Messages), "content unchanged")
		assert.Equal(t, "", hget(t, s, q, keys.LockTimes), "lock time unchanged")
	}
	requeueStored := func(content string, lockTime int64) check {
		return func(t *testing.T, s *queuetest.Server, q string, now int64) {
			assert.Equal(t, content, hget(t, s, q, keys.MessagesRQ), "messages-rq")
			assert.Equal(t, lockTime, hgetInt(t, s, q, keys.LockTimesRQ), "lock-times-rq")
			assert.Equal(t, "old", hget(t, s, q, keys.Messages), "content unchanged")
		}
	}
	// resetWakes: a reset of a queued message's backoff pushes it onto no
	// list (its due entry brings it back), and wakes a sleeper when the
	// message comes due before every other due entry, as it does here,
	// due holding no other (TestFleetResetWakes has one that does not).
	resetWakes := func(t *testing.T, s *queuetest.Server, q string, now int64) {
		assert.Empty(t, list(t, s, q, keys.MidsReady), "not pushed onto mids-ready")
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "sleeper woken")
	}
	pushedReady := func(t *testing.T, s *queuetest.Server, q string, now int64) {
		assert.Equal(t, []string{mid}, list(t, s, q, keys.MidsReady), "pushed onto mids-ready")
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "sleeper woken")
	}
	rows := []struct {
		name  string
		st    state
		opts  EnqueueMessage
		want  Code
		check check
	}{
		{"nil: added to mids-ready", state{}, EnqueueMessage{}, Added,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, []string{mid}, list(t, s, q, keys.MidsReady))
				assert.Equal(t, []string{EndOfCircle}, list(t, s, q, keys.MidCircle), "circle made with its sentinel")
				assert.Equal(t, "new", hget(t, s, q, keys.Messages))
				near(t, now, hgetInt(t, s, q, keys.UDTs), "udts")
				assert.Equal(t, "", hget(t, s, q, keys.LockTimes))
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs))
				assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "sentinel created in isleep-a")
			}},
		{"nil: with init-backoff, onto the circle", state{}, EnqueueMessage{InitialBackoff: 5 * time.Second}, Added,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Empty(t, list(t, s, q, keys.MidsReady))
				assert.Equal(t, []string{mid, EndOfCircle}, list(t, s, q, keys.MidCircle))
				near(t, now+5000, hgetInt(t, s, q, keys.Backoffs), "backoff")
			}},
		{"nil: with lock time", state{}, EnqueueMessage{LockTime: 1234 * time.Millisecond}, Added,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, int64(1234), hgetInt(t, s, q, keys.LockTimes))
			}},
		{"queued, can-update: content and lock time replaced, udts kept", state{exists: true, lockTime: 99, udt: -7000},
			EnqueueMessage{CanUpdate: true}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, "new", hget(t, s, q, keys.Messages))
				assert.Equal(t, "", hget(t, s, q, keys.LockTimes), "lock time deleted when none given")
				near(t, now-7000, hgetInt(t, s, q, keys.UDTs), "udts not overwritten")
				assert.Empty(t, list(t, s, q, keys.MidsReady), "not pushed again")
			}},
		{"queued-with-backoff, can-update: backoff kept", state{exists: true, backoff: 3600000},
			EnqueueMessage{CanUpdate: true, InitialBackoff: time.Second}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, "new", hget(t, s, q, keys.Messages))
				near(t, now+3600000, hgetInt(t, s, q, keys.Backoffs), "backoff kept")
			}},
		{"queued, can-update + reset-init-backoff", state{exists: true, backoff: 3600000},
			EnqueueMessage{CanUpdate: true, ResetInitialBackoff: true, InitialBackoff: 2 * time.Second}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, "new", hget(t, s, q, keys.Messages))
				near(t, now+2000, hgetInt(t, s, q, keys.Backoffs), "backoff reset")
			}},
		{"queued, can-update + reset-init-backoff without one", state{exists: true, backoff: 3600000},
			EnqueueMessage{CanUpdate: true, ResetInitialBackoff: true}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs), "backoff deleted")
			}},
		{"queued, reset-init-backoff alone", state{exists: true},
			EnqueueMessage{ResetInitialBackoff: true, InitialBackoff: 3 * time.Second}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				unchanged(t, s, q, now)
				near(t, now+3000, hgetInt(t, s, q, keys.Backoffs), "backoff set")
				near(t, now+3000, zscore(t, s, q, keys.Due), "due at its end")
				resetWakes(t, s, q, now)
			}},
		{"queued-with-backoff, reset-init-backoff alone without one", state{exists: true, backoff: 3600000},
			EnqueueMessage{ResetInitialBackoff: true}, Updated,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				unchanged(t, s, q, now)
				assert.Equal(t, "", hget(t, s, q, keys.Backoffs), "backoff deleted")
				near(t, now, zscore(t, s, q, keys.Due), "due now: the next poll finds it")
				resetWakes(t, s, q, now)
			}},
		{"queued: refused", state{exists: true}, EnqueueMessage{}, AlreadyQueued, unchanged},
		{"queued-with-backoff: refused", state{exists: true, backoff: 3600000}, EnqueueMessage{CanRequeue: true}, AlreadyQueued,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				unchanged(t, s, q, now)
				assert.Equal(t, "", hget(t, s, q, keys.MessagesRQ))
			}},
		{"locked, can-requeue: requeue added", state{exists: true, lock: 3600000},
			EnqueueMessage{CanRequeue: true, LockTime: 4321 * time.Millisecond}, Added, requeueStored("new", 4321)},
		{"locked-with-requeue, can-requeue + can-update: requeue updated", state{exists: true, lock: 3600000, rq: true, rqLockTime: 5},
			EnqueueMessage{CanRequeue: true, CanUpdate: true}, Updated, requeueStored("new", 0)},
		{"locked-with-requeue, can-requeue: refused", state{exists: true, lock: 3600000, rq: true},
			EnqueueMessage{CanRequeue: true}, AlreadyQueued, requeueStored("rq", 0)},
		{"locked: refused", state{exists: true, lock: 3600000}, EnqueueMessage{CanUpdate: true}, Locked, unchanged},
		{"done-with-backoff, can-requeue: requeue added", state{exists: true, done: true, backoff: 3600000},
			EnqueueMessage{CanRequeue: true}, Added, requeueStored("new", 0)},
		{"done-with-requeue in backoff, can-requeue + can-update: updated", state{exists: true, done: true, backoff: 3600000, rq: true},
			EnqueueMessage{CanRequeue: true, CanUpdate: true}, Updated, requeueStored("new", 0)},
		{"done-with-requeue in backoff, can-requeue: refused", state{exists: true, done: true, backoff: 3600000, rq: true},
			EnqueueMessage{CanRequeue: true}, AlreadyQueued, requeueStored("rq", 0)},
		{"done-with-backoff: refused", state{exists: true, done: true, backoff: 3600000}, EnqueueMessage{CanUpdate: true}, Backoff, unchanged},
		{"done-awaiting-gc: ready, woken, requeue added", state{exists: true, done: true}, EnqueueMessage{}, Added,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				pushedReady(t, s, q, now)
				requeueStored("new", 0)(t, s, q, now)
			}},
		{"done-with-requeue: ready, woken, refused", state{exists: true, done: true, rq: true}, EnqueueMessage{}, AlreadyQueued,
			func(t *testing.T, s *queuetest.Server, q string, now int64) {
				pushedReady(t, s, q, now)
				requeueStored("rq", 0)(t, s, q, now)
			}},
		{"done-with-requeue, can-update: ready, woken, updated", state{exists: true, done: true, rq: true}, EnqueueMessage{CanUpdate: true},
			Updated, func(t *testing.T, s *queuetest.Server, q string, now int64) {
				pushedReady(t, s, q, now)
				requeueStored("new", 0)(t, s, q, now)
			}},
	}
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		for i, row := range rows {
			q := fmt.Sprintf("enqueue-%d", i)
			now := s.Now(t)
			put(t, s, q, row.st, now)
			opts := row.opts
			opts.ID = mid
			code, err := enqueue(ctx, s, q, "new", &opts)
			require.NoError(t, err, row.name)
			assert.Equal(t, row.want, code, row.name)
			t.Run(row.name, func(t *testing.T) { row.check(t, s, q, now) })
		}
	})
}

// TestSpecEnqueueWake: the sentinel moves between the sleep lists, one move
// per call.
func TestSpecEnqueueWake(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		_, err := enqueue(ctx, s, q, "x", nil)
		require.NoError(t, err)
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "created in a")
		_, err = enqueue(ctx, s, q, "x", nil)
		require.NoError(t, err)
		assert.Empty(t, list(t, s, q, keys.ISleepA))
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepB), "moved a to b")
		_, err = enqueue(ctx, s, q, "x", nil)
		require.NoError(t, err)
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "moved b to a")
		// A refused enqueue wakes nobody.
		code, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: "dup"})
		require.NoError(t, err)
		require.Equal(t, Added, code)
		code, err = enqueue(ctx, s, q, "x", &EnqueueMessage{ID: "dup"})
		require.NoError(t, err)
		require.Equal(t, AlreadyQueued, code)
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepB), "only the added one moved it")
		// A batch moves it once.
		answers := EnqueuePipelined(ctx, s.RDB, s.Keys(q), []EnqueueCall{{Token: randomToken(), Keep: time.Minute,
			Messages: []EnqueueMessage{{ID: "a", Data: []byte("a")}, {ID: "b", Data: []byte("b")}}}})
		require.Len(t, answers, 1)
		require.NoError(t, answers[0].Err)
		require.Equal(t, []Code{Added, Added}, answers[0].Codes)
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.ISleepA), "one move for the batch")
	})
}

// TestSpecEnqueueWakeDelayed: a delayed message wakes a sleeping worker
// only when it comes due before every entry of due (a worker sleeps until
// the earliest at most, and so sleeps less); an undelayed one always.
func TestSpecEnqueueWakeDelayed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		sentinel := func() string {
			t.Helper()
			a, b := list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)
			require.Equal(t, 1, len(a)+len(b), "one sentinel")
			if len(a) == 1 {
				return "a"
			}
			return "b"
		}
		delayed := func(id string, d time.Duration) {
			t.Helper()
			code, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: id, InitialBackoff: d})
			require.NoError(t, err)
			require.Equal(t, Added, code)
		}
		delayed("first", time.Hour)
		assert.Equal(t, "a", sentinel(), "due was empty: woken (sentinel made in a)")
		delayed("later", 2*time.Hour)
		assert.Equal(t, "a", sentinel(), "due after the earliest entry: not woken")
		delayed("sooner", time.Minute)
		assert.Equal(t, "b", sentinel(), "due before the earliest entry: woken")
		delayed("same", time.Minute+time.Second)
		assert.Equal(t, "b", sentinel(), "not before the earliest: not woken")

		// In one call, a sooner one wakes once however many there are.
		answers := EnqueuePipelined(ctx, s.RDB, s.Keys(q), []EnqueueCall{{Token: randomToken(), Sends: new(Sends), Keep: time.Minute,
			Messages: []EnqueueMessage{{ID: "s1", Data: []byte("x"), InitialBackoff: time.Second},
				{ID: "s2", Data: []byte("x"), InitialBackoff: 500 * time.Millisecond}}}})
		require.NoError(t, answers[0].Err)
		assert.Equal(t, "a", sentinel(), "moved once")

		code, err := enqueue(ctx, s, q, "x", nil)
		require.NoError(t, err)
		require.Equal(t, Added, code)
		assert.Equal(t, "b", sentinel(), "an undelayed message wakes")
	})
}

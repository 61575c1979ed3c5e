package mq

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file check the receipts of the protocol document: a
// call that Redis applied but whose reply was lost, sent again (by go-redis,
// or by a poller that never got its reply), changes nothing more and
// answers the truth.

// enqueueCall runs one enqueue script call with the given token, as
// Enqueue does, so that a test can send the very same call twice.
func enqueueCall(t *testing.T, c *Client, q, token string, keep time.Duration, msg any, opts *EnqueueOptions) string {
	t.Helper()
	_, args, err := c.enqueueArgs(q, msg, opts)
	require.NoError(t, err)
	args = append([]any{token, keep.Milliseconds()}, args...)
	reply, err := runScript(context.Background(), c, enqueueScript, c.keys(q), args...).StringSlice()
	require.NoError(t, err)
	require.Len(t, reply, 1)
	return reply[0]
}

// pollUntil polls q one step at a time until a step of the given kind (and
// skip reason, if any) comes, and answers it.
func pollUntil(t *testing.T, c *Client, q, kind, reason string) pollStep {
	t.Helper()
	for range 20 {
		st := onePoll(t, c, q)
		if st.kind == kind && (reason == "" || st.reason == reason) {
			return st
		}
	}
	t.Fatalf("no %s %s step in 20 polls", kind, reason)
	return pollStep{}
}

func TestEnqueueResent(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		ctx := context.Background()
		q := queueName(t)
		opts := &EnqueueOptions{MessageID: mid}
		const token = "aa01"
		resend := func(what string) {
			t.Helper()
			assert.Equal(t, "added", enqueueCall(t, c, q, token, time.Minute, "first", opts), "the resend answers the first answer, %s", what)
		}

		require.Equal(t, "added", enqueueCall(t, c, q, token, time.Minute, "first", opts))
		resend("while queued")
		assert.Equal(t, []string{mid}, s.list(t, q, keys.MidsReady), "added once")

		st := pollUntil(t, c, q, stepHandle, "")
		ok, err := c.complete(ctx, q, []completion{{id: mid, lockedUntil: st.lockedUntil, outcome: outcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		resend("once handled")
		assert.Equal(t, StatusDoneAwaitingGC, statusOf(t, c, q, mid), "not requeued")

		pollUntil(t, c, q, stepSkip, "did-gc")
		require.Equal(t, StatusNone, statusOf(t, c, q, mid))
		resend("once collected")
		assert.Equal(t, StatusNone, statusOf(t, c, q, mid), "not added anew")

		// Another call is another enqueue, though everything else is alike.
		assert.Equal(t, "added", enqueueCall(t, c, q, "bb02", time.Minute, "first", opts))
		assert.Equal(t, StatusQueued, statusOf(t, c, q, mid))

		// A refused call writes nothing, receipt included: sent again, it
		// is decided afresh.
		assert.Equal(t, "already-queued", enqueueCall(t, c, q, "cc03", time.Minute, "again", opts))
		st = pollUntil(t, c, q, stepHandle, "")
		assert.Equal(t, "locked", enqueueCall(t, c, q, "cc03", time.Minute, "again", opts))
	})
}

func TestEnqueueReceiptsExpire(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		const keep = 50 * time.Millisecond
		waitServerClock := func(ms int64) {
			t.Helper()
			until := s.now(t) + ms
			if s.mini != nil {
				s.mini.SetTime(time.UnixMilli(until + 1))
				return
			}
			waitFor(t, "the server's clock", func() bool { return s.now(t) > until })
		}
		if s.mini != nil {
			s.mini.SetTime(time.Now())
		}
		opts := func(id string) *EnqueueOptions { return &EnqueueOptions{MessageID: id} }
		require.Equal(t, "added", enqueueCall(t, c, q, "aa01", keep, "x", opts("a")))
		waitServerClock(keep.Milliseconds())
		// A new generation starts; the first receipt moves to prev.
		require.Equal(t, "added", enqueueCall(t, c, q, "bb02", keep, "x", opts("b")))
		assert.Equal(t, int64(2), s.rdb.HLen(context.Background(), s.key(q, keys.EnqueueReceiptsPrev)).Val(),
			"prev holds aa01 and its '@since'")
		require.NoError(t, s.rdb.HDel(context.Background(), s.key(q, keys.Messages), "a").Err())
		assert.Equal(t, "added", enqueueCall(t, c, q, "aa01", keep, "x", opts("a")), "still recognised from prev")
		assert.Equal(t, StatusNone, statusOf(t, c, q, "a"))
		waitServerClock(keep.Milliseconds())
		require.Equal(t, "added", enqueueCall(t, c, q, "cc03", keep, "x", opts("c")))
		waitServerClock(keep.Milliseconds())
		require.Equal(t, "added", enqueueCall(t, c, q, "dd04", keep, "x", opts("d")))
		assert.Equal(t, int64(2), s.rdb.HLen(context.Background(), s.key(q, keys.EnqueueReceiptsPrev)).Val(),
			"two generations at most: prev holds cc03 and its '@since'")
		assert.Equal(t, "added", enqueueCall(t, c, q, "aa01", keep, "x", opts("a")),
			"two generations later, the token is a new call")
		assert.Equal(t, StatusQueued, statusOf(t, c, q, "a"))
	})
}

// pollAs makes one poll call as poller id would, handing out up to
// maxHandles messages (with no steps at all for 0).
func pollAs(t *testing.T, c *Client, q, id string, seq, confirmed uint64, maxHandles int, cs ...completion) (pollReply, error) {
	t.Helper()
	steps := 10
	if maxHandles == 0 {
		steps = 0
	}
	return c.pollCall(context.Background(), q, pollArgs{
		lockTime: time.Minute, sleeps: testSleeps, maxSteps: steps, maxHandles: maxHandles,
		completions: cs, poller: id, seq: seq, confirmed: confirmed,
	})
}

func handedOut(r pollReply) map[string]pollStep {
	out := map[string]pollStep{}
	for _, st := range r.steps {
		if st.kind == stepHandle {
			out[st.id] = st
		}
	}
	return out
}

func TestPollReplyLost(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		ctx := context.Background()
		q := queueName(t)
		for _, id := range []string{"m1", "m2", "m3"} {
			enqueue(t, c, q, id, &EnqueueOptions{MessageID: id})
		}
		const p = "ab12"

		r1, err := pollAs(t, c, q, p, 1, 0, 2)
		require.NoError(t, err)
		first := handedOut(r1)
		require.Len(t, first, 2)

		// The reply of call 1 never came: call 2 gives its messages back
		// and takes them again, at the same attempt.
		r2, err := pollAs(t, c, q, p, 2, 0, 2)
		require.NoError(t, err)
		second := handedOut(r2)
		require.Len(t, second, 2)
		for id, st := range second {
			assert.Contains(t, first, id, "the same messages come back first")
			assert.EqualValues(t, 1, st.attempt, "%s: the lost hand-out is not counted", id)
			assert.Equal(t, "1", s.field(t, q, keys.NAttempts, id))
		}

		// go-redis sends call 2 again: the same again.
		r2b, err := pollAs(t, c, q, p, 2, 0, 2)
		require.NoError(t, err)
		again := handedOut(r2b)
		require.Len(t, again, 2)
		for id, st := range again {
			assert.Contains(t, second, id)
			assert.EqualValues(t, 1, st.attempt)
		}

		// Call 1, delayed somewhere, arrives after all that: it is stale
		// and changes nothing.
		before := dumpQueue(t, s, q, s.now(t))
		_, err = pollAs(t, c, q, p, 1, 0, 2)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "MQSTALE")
		assert.Equal(t, before, dumpQueue(t, s, q, s.now(t)), "a stale call writes nothing")

		// Outcomes: call 3 records one; its reply is lost. Call 4 sends it
		// again first, with a new one: both answer ok, none is recorded
		// twice or read as lost.
		var ids []string
		for id := range again {
			ids = append(ids, id)
		}
		done := func(id string) completion {
			return completion{id: id, lockedUntil: again[id].lockedUntil, outcome: outcomeSuccess}
		}
		_, err = pollAs(t, c, q, p, 3, 2, 0, done(ids[0]))
		require.NoError(t, err)
		r4, err := pollAs(t, c, q, p, 4, 2, 0, done(ids[0]), done(ids[1]))
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true}, r4.recorded)
		for _, id := range ids {
			done, err := s.rdb.SIsMember(ctx, s.key(q, keys.Done), id).Result()
			require.NoError(t, err)
			assert.True(t, done, id)
		}
	})
}

func TestPollReceiptOfOtherPoller(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		q := queueName(t)
		enqueue(t, c, q, "m1", &EnqueueOptions{MessageID: "m1"})
		r, err := pollAs(t, c, q, "aa", 1, 0, 1)
		require.NoError(t, err)
		require.Len(t, handedOut(r), 1)
		// Another poller's calls never touch aa's hand-outs.
		_, err = pollAs(t, c, q, "bb", 2, 0, 1)
		require.NoError(t, err)
		assert.Equal(t, StatusLocked, statusOf(t, c, q, "m1"))
		assert.Equal(t, "1", s.field(t, q, keys.NAttempts, "m1"))
	})
}

func TestSleepSentinelsNormalised(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		c := s.client(t, nil)
		ctx := context.Background()
		q := queueName(t)
		for range 17 {
			require.NoError(t, s.rdb.LPush(ctx, s.key(q, keys.ISleepA), "_").Err())
		}
		for range 3 {
			require.NoError(t, s.rdb.LPush(ctx, s.key(q, keys.ISleepB), "_").Err())
		}
		st := pollUntil(t, c, q, stepSleep, "")
		a, b := s.list(t, q, keys.ISleepA), s.list(t, q, keys.ISleepB)
		assert.Equal(t, 1, len(a)+len(b), "one sentinel left: %v %v", a, b)
		want := "a"
		if len(a) > 0 {
			want = "b"
		}
		assert.Equal(t, want, st.sleepList, "the sleep blocks on the empty list")
	})
}

// TestEnqueueRefusedWhenFull: with Redis over maxmemory (noeviction), an
// enqueue is refused with ErrRedisFull and writes nothing, while a worker
// goes on polling, handling and collecting, which frees memory.
func TestEnqueueRefusedWhenFull(t *testing.T) {
	s := newRealServer(t, "--maxmemory-policy", "noeviction")
	c := s.client(t, nil)
	ctx := context.Background()
	q := queueName(t)
	for i := range 20 {
		enqueue(t, c, q, i, nil)
	}
	// Fill Redis past a limit set just above what it uses now.
	used := func() int64 {
		info, err := s.rdb.InfoMap(ctx, "memory").Result()
		require.NoError(t, err)
		n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
		require.NoError(t, err)
		return n
	}
	require.NoError(t, s.rdb.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, s.rdb.Set(ctx, "ballast", make([]byte, 8<<20), 0).Err())
	require.NoError(t, s.rdb.ConfigSet(ctx, "maxmemory", "4mb").Err())
	require.Greater(t, used(), int64(4<<20))

	before := dumpQueue(t, s, q, s.now(t))
	_, err := c.Enqueue(ctx, q, make([]byte, 100<<10), nil)
	require.ErrorIs(t, err, ErrRedisFull)
	res, err := c.EnqueueMany(ctx, q, EnqueueRequest{Message: "a"}, EnqueueRequest{Message: "b"})
	require.ErrorIs(t, err, ErrRedisFull)
	for _, r := range res {
		assert.Empty(t, r.Action, "no answer: the call failed")
	}
	assert.Equal(t, before, dumpQueue(t, s, q, s.now(t)), "nothing written")

	// The worker drains the queue all the same.
	w, calls := startWorker(t, c, q, WorkerConfig{}, nil)
	for range 20 {
		next(t, calls)
	}
	waitFor(t, "every message collected", func() bool {
		n, err := s.rdb.HLen(ctx, s.key(q, keys.Messages)).Result()
		require.NoError(t, err)
		return n == 0
	})
	assert.Zero(t, w.Stats().Counts.PollErrors, "no poll refused")
	assert.Zero(t, w.Stats().Counts.LockLost)
}

// field reads one field of a hash of q.
func (s *server) field(t *testing.T, q string, k keys.Index, f string) string {
	t.Helper()
	v, err := s.rdb.HGet(context.Background(), s.key(q, k), f).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	require.NoError(t, err)
	return v
}

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

// The tests in this file check the receipts of the protocol document: a
// call that Redis applied but whose reply was lost, sent again (by go-redis,
// or by a poller that never got its reply), changes nothing more and
// answers the truth.

// enqueueCall runs one enqueue script call with the given token, as
// Enqueue does, so that a test can send the very same call twice.
func enqueueCall(t *testing.T, s *queuetest.Server, q, token string, keep time.Duration, msg any, m *EnqueueMessage) Code {
	t.Helper()
	one := *m
	one.Data = []byte(fmt.Sprint(msg))
	a := Enqueue(context.Background(), s.RDB, s.Keys(q), EnqueueCall{Token: token, Keep: keep, Messages: []EnqueueMessage{one}})
	require.NoError(t, a.Err)
	require.Len(t, a.Codes, 1)
	return a.Codes[0]
}

// pollUntil polls q one step at a time until a step of the given kind (and
// skip reason, if any) comes, and answers it.
func pollUntil(t *testing.T, s *queuetest.Server, q string, kind StepKind, reason string) Step {
	t.Helper()
	for range 20 {
		st := onePoll(t, s, q)
		if st.Kind == kind && (reason == "" || st.Reason == reason) {
			return st
		}
	}
	t.Fatalf("no %s %s step in 20 polls", kind, reason)
	return Step{}
}

func TestEnqueueResent(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		opts := &EnqueueMessage{ID: mid}
		const token = "aa01"
		resend := func(what string) {
			t.Helper()
			assert.Equal(t, Added, enqueueCall(t, s, q, token, time.Minute, "first", opts), "the resend answers the first answer, %s", what)
		}

		require.Equal(t, Added, enqueueCall(t, s, q, token, time.Minute, "first", opts))
		resend("while queued")
		assert.Equal(t, []string{mid}, list(t, s, q, keys.MidsReady), "added once")

		st := pollUntil(t, s, q, StepHandle, "")
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		require.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected at completion (§11)")
		resend("once collected")
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "not added anew")

		// Another call is another enqueue, though everything else is alike.
		assert.Equal(t, Added, enqueueCall(t, s, q, "bb02", time.Minute, "first", opts))
		assert.Equal(t, StatusQueued, statusOf(t, s, q, mid))

		// A refused call writes nothing, receipt included: sent again, it
		// is decided afresh.
		assert.Equal(t, AlreadyQueued, enqueueCall(t, s, q, "cc03", time.Minute, "again", opts))
		st = pollUntil(t, s, q, StepHandle, "")
		assert.Equal(t, Locked, enqueueCall(t, s, q, "cc03", time.Minute, "again", opts))
	})
}

// TestEnqueueFirstSend: a call marked with Sends skips the receipt read on
// its first send only. Sent again (the very call, as go-redis sends it
// again), it finds its receipt, also once the message was collected; its
// first send wrote the receipt though it read none.
func TestEnqueueFirstSend(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		call := EnqueueCall{Token: "ab01", Sends: new(Sends), Keep: time.Minute,
			Messages: []EnqueueMessage{{ID: mid, Data: []byte("first")}}}
		send := func() Code {
			t.Helper()
			a := Enqueue(ctx, s.RDB, s.Keys(q), call)
			require.NoError(t, a.Err)
			return a.Codes[0]
		}
		require.Equal(t, Added, send())
		st := pollUntil(t, s, q, StepHandle, "")
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		require.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected")
		assert.Equal(t, Added, send(), "the resend answers the receipt")
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "not added anew")

		// A first send does not look: a receipt planted under a fresh
		// call's token (which a real token, drawn at random, never meets)
		// is not read.
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.EnqueueReceipts), "cd02", "q").Err())
		fresh := EnqueueCall{Token: "cd02", Sends: new(Sends), Keep: time.Minute,
			Messages: []EnqueueMessage{{ID: "other", Data: []byte("x")}}}
		a := Enqueue(ctx, s.RDB, s.Keys(q), fresh)
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Added}, a.Codes, "decided, not answered from the planted receipt")
	})
}

// TestEnqueueReceiptsExpireFirstSends: first sends read when the receipts'
// generation began on one call in sixteen (tokens ending in 0), and start
// the next generation then; receipts still live at least the keep time and
// two generations at most.
func TestEnqueueReceiptsExpireFirstSends(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		const keep = 50 * time.Millisecond
		s.FollowClock()
		// Load the script first: a call that meets NOSCRIPT is sent again
		// as EVAL, a second send, which reads and writes as resends do.
		require.NoError(t, enqueueScript.Load(ctx, s.RDB).Err())
		require.NoError(t, enqueueNewScript.Load(ctx, s.RDB).Err())
		calls := map[string]EnqueueCall{}
		send := func(token, id string) Code {
			t.Helper()
			c, ok := calls[token]
			if !ok {
				c = EnqueueCall{Token: token, Sends: new(Sends), Keep: keep, Messages: []EnqueueMessage{{ID: id, Data: []byte("x")}}}
				calls[token] = c
			}
			a := Enqueue(ctx, s.RDB, s.Keys(q), c)
			require.NoError(t, a.Err)
			return a.Codes[0]
		}
		hlen := func(k keys.Index) int64 { return s.RDB.HLen(ctx, s.Key(q, k)).Val() }
		require.Equal(t, Added, send("aa1", "a"))
		assert.Equal(t, int64(1), hlen(keys.EnqueueReceipts), "an unsampled first send only writes its receipt")
		require.Equal(t, Added, send("bb0", "b"))
		assert.Equal(t, int64(3), hlen(keys.EnqueueReceipts), "a sampled one gives the generation its start")
		s.AwaitClock(t, keep.Milliseconds())
		require.Equal(t, Added, send("cc1", "c"))
		assert.Zero(t, hlen(keys.EnqueueReceiptsPrev), "unsampled: no new generation yet")
		require.Equal(t, Added, send("dd0", "d"))
		assert.Equal(t, int64(4), hlen(keys.EnqueueReceiptsPrev), "prev holds aa1, bb0, cc1 and '@since'")
		require.NoError(t, s.RDB.HDel(ctx, s.Key(q, keys.Messages), "a").Err())
		assert.Equal(t, Added, send("aa1", "a"), "resent, still recognised from prev")
		assert.Equal(t, StatusNone, statusOf(t, s, q, "a"))
		s.AwaitClock(t, keep.Milliseconds())
		require.Equal(t, Added, send("ee0", "e"))
		assert.Equal(t, int64(2), hlen(keys.EnqueueReceiptsPrev), "two generations at most: prev holds dd0 and '@since'")
	})
}

func TestEnqueueReceiptsExpire(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		const keep = 50 * time.Millisecond
		s.FollowClock()
		opts := func(id string) *EnqueueMessage { return &EnqueueMessage{ID: id} }
		require.Equal(t, Added, enqueueCall(t, s, q, "aa01", keep, "x", opts("a")))
		s.AwaitClock(t, keep.Milliseconds())
		// A new generation starts; the first receipt moves to prev.
		require.Equal(t, Added, enqueueCall(t, s, q, "bb02", keep, "x", opts("b")))
		assert.Equal(t, int64(2), s.RDB.HLen(context.Background(), s.Key(q, keys.EnqueueReceiptsPrev)).Val(),
			"prev holds aa01 and its '@since'")
		require.NoError(t, s.RDB.HDel(context.Background(), s.Key(q, keys.Messages), "a").Err())
		assert.Equal(t, Added, enqueueCall(t, s, q, "aa01", keep, "x", opts("a")), "still recognised from prev")
		assert.Equal(t, StatusNone, statusOf(t, s, q, "a"))
		s.AwaitClock(t, keep.Milliseconds())
		require.Equal(t, Added, enqueueCall(t, s, q, "cc03", keep, "x", opts("c")))
		s.AwaitClock(t, keep.Milliseconds())
		require.Equal(t, Added, enqueueCall(t, s, q, "dd04", keep, "x", opts("d")))
		assert.Equal(t, int64(2), s.RDB.HLen(context.Background(), s.Key(q, keys.EnqueueReceiptsPrev)).Val(),
			"two generations at most: prev holds cc03 and its '@since'")
		assert.Equal(t, Added, enqueueCall(t, s, q, "aa01", keep, "x", opts("a")),
			"two generations later, the token is a new call")
		assert.Equal(t, StatusQueued, statusOf(t, s, q, "a"))
	})
}

// pollAs makes one poll call as poller id would, handing out up to
// maxHandles messages (with no steps at all for 0).
func pollAs(t *testing.T, s *queuetest.Server, q, id string, seq, confirmed uint64, maxHandles int, cs ...Completion) (PollReply, error) {
	t.Helper()
	steps := 10
	if maxHandles == 0 {
		steps = 0
	}
	return Poll(context.Background(), s.RDB, s.Keys(q), PollArgs{
		LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: steps, MaxHandles: maxHandles,
		Completions: cs, Poller: id, Seq: seq, Confirmed: confirmed,
	})
}

func handedOut(r PollReply) map[string]Step {
	out := map[string]Step{}
	for _, st := range r.Steps {
		if st.Kind == StepHandle {
			out[st.ID] = st
		}
	}
	return out
}

func TestPollReplyLost(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		for _, id := range []string{"m1", "m2", "m3"} {
			mustEnqueue(t, s, q, id, &EnqueueMessage{ID: id})
		}
		const p = "ab12"

		r1, err := pollAs(t, s, q, p, 1, 0, 2)
		require.NoError(t, err)
		first := handedOut(r1)
		require.Len(t, first, 2)

		// The reply of call 1 never came: call 2 gives its messages back
		// and takes them again, at the same attempt.
		r2, err := pollAs(t, s, q, p, 2, 0, 2)
		require.NoError(t, err)
		second := handedOut(r2)
		require.Len(t, second, 2)
		for id, st := range second {
			assert.Contains(t, first, id, "the same messages come back first")
			assert.EqualValues(t, 1, st.Attempt, "%s: the lost hand-out is not counted", id)
			assert.Equal(t, "1", field(t, s, q, keys.NAttempts, id))
		}

		// go-redis sends call 2 again: the same again.
		r2b, err := pollAs(t, s, q, p, 2, 0, 2)
		require.NoError(t, err)
		again := handedOut(r2b)
		require.Len(t, again, 2)
		for id, st := range again {
			assert.Contains(t, second, id)
			assert.EqualValues(t, 1, st.Attempt)
		}

		// Call 1, delayed somewhere, arrives after all that: it is stale
		// and changes nothing.
		before := dumpQueue(t, s, q, s.Now(t))
		_, err = pollAs(t, s, q, p, 1, 0, 2)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "MQSTALE")
		assert.Equal(t, before, dumpQueue(t, s, q, s.Now(t)), "a stale call writes nothing")

		// Outcomes: call 3 records one; its reply is lost. Call 4 sends it
		// again first, with a new one: both answer ok, none is recorded
		// twice or read as lost.
		var ids []string
		for id := range again {
			ids = append(ids, id)
		}
		done := func(id string) Completion {
			return Completion{ID: id, LockedUntil: again[id].LockedUntil, Outcome: OutcomeSuccess}
		}
		_, err = pollAs(t, s, q, p, 3, 2, 0, done(ids[0]))
		require.NoError(t, err)
		r4, err := pollAs(t, s, q, p, 4, 2, 0, done(ids[0]), done(ids[1]))
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true}, r4.Recorded)
		for _, id := range ids {
			assert.Equal(t, StatusNone, statusOf(t, s, q, id), "%s: handled and collected, once", id)
		}
	})
}

func TestPollReceiptOfOtherPoller(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "m1", &EnqueueMessage{ID: "m1"})
		r, err := pollAs(t, s, q, "aa", 1, 0, 1)
		require.NoError(t, err)
		require.Len(t, handedOut(r), 1)
		// Another poller's calls never touch aa's hand-outs.
		_, err = pollAs(t, s, q, "bb", 2, 0, 1)
		require.NoError(t, err)
		assert.Equal(t, StatusLocked, statusOf(t, s, q, "m1"))
		assert.Equal(t, "1", field(t, s, q, keys.NAttempts, "m1"))
	})
}

func TestSleepSentinelsNormalised(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		for range 17 {
			require.NoError(t, s.RDB.LPush(ctx, s.Key(q, keys.ISleepA), "_").Err())
		}
		for range 3 {
			require.NoError(t, s.RDB.LPush(ctx, s.Key(q, keys.ISleepB), "_").Err())
		}
		st := pollUntil(t, s, q, StepSleep, "")
		a, b := list(t, s, q, keys.ISleepA), list(t, s, q, keys.ISleepB)
		assert.Equal(t, 1, len(a)+len(b), "one sentinel left: %v %v", a, b)
		want := "a"
		if len(a) > 0 {
			want = "b"
		}
		assert.Equal(t, want, st.SleepList, "the sleep blocks on the empty list")
	})
}

// TestEnqueueRefusedWhenFull: with Redis over maxmemory (noeviction), an
// enqueue call is refused with Redis's OOM error and writes nothing, while
// polls go on handing out, recording and collecting, which frees memory
// (docs/protocol.md §9). The root package's test of the same name checks
// the public error and a worker.
func TestEnqueueRefusedWhenFull(t *testing.T) {
	s := queuetest.RealServer(t, "--maxmemory-policy", "noeviction")
	ctx := context.Background()
	q := queuetest.QueueName(t)
	mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid})
	require.NoError(t, s.RDB.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, s.RDB.Set(ctx, "ballast", make([]byte, 8<<20), 0).Err())
	require.NoError(t, s.RDB.ConfigSet(ctx, "maxmemory", "4mb").Err())

	before := dumpQueue(t, s, q, s.Now(t))
	_, err := enqueue(ctx, s, q, "y", nil)
	assert.Equal(t, OOM, ErrorCode(err), "%v", err)
	// An id the queue holds already, first of its call: refused as well,
	// before an update or a reset writes anything.
	_, err = enqueue(ctx, s, q, "new content", &EnqueueMessage{ID: mid, CanUpdate: true, LockTime: time.Second})
	assert.Equal(t, OOM, ErrorCode(err), "update: %v", err)
	_, err = enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid, ResetInitialBackoff: true, InitialBackoff: time.Hour})
	assert.Equal(t, OOM, ErrorCode(err), "reset: %v", err)
	answers := EnqueuePipelined(ctx, s.RDB, s.Keys(q), []EnqueueCall{
		{Token: randomToken(), Keep: time.Minute, Messages: []EnqueueMessage{{ID: "a"}, {ID: "b"}}},
	})
	require.Len(t, answers, 1)
	assert.Equal(t, OOM, ErrorCode(answers[0].Err), "%v", answers[0].Err)
	assert.Empty(t, answers[0].Codes)
	assert.Equal(t, before, dumpQueue(t, s, q, s.Now(t)), "nothing written")

	st := pollUntil(t, s, q, StepHandle, "")
	ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, ok)
	assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected at completion")
}

// field reads one field of a hash of q.
func field(t *testing.T, s *queuetest.Server, q string, k keys.Index, f string) string {
	t.Helper()
	v, err := s.RDB.HGet(context.Background(), s.Key(q, k), f).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	require.NoError(t, err)
	return v
}

// TestCompletionCollectsMetadata: a message collected at completion
// (docs/protocol.md §11) takes its metadata with it; the root package's
// TestMetadata checks what the Inspector shows.
func TestCompletionCollectsMetadata(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, Metadata: []byte(`{"k":"v"}`)})
		require.Equal(t, `{"k":"v"}`, hget(t, s, q, keys.Meta), "kept beside the content")
		st := pollUntil(t, s, q, StepHandle, "")
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected at completion")
		n, err := s.RDB.Exists(ctx, s.Key(q, keys.Meta)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "the metadata went with its message")
	})
}

// TestEnqueueResentDrawnID: a call of one message whose id the client
// drew has that id as its token (§8), whatever Token says: its first
// send, by the full call and by the short one past the wake backlog,
// stores its receipt under the id, and the very call sent again once the
// message was collected answers that receipt and adds nothing.
func TestEnqueueResentDrawnID(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		// Loaded first: a first send that meets NOSCRIPT is sent again as
		// EVAL, a later send, which enqueue.lua takes.
		require.NoError(t, enqueueNewScript.Load(ctx, s.RDB).Err())
		require.NoError(t, enqueueNewShortScript.Load(ctx, s.RDB).Err())
		for _, short := range []bool{false, true} {
			q := fmt.Sprintf("%s:%v", queuetest.QueueName(t), short)
			b := new(Backlogs)
			if short {
				backlogged(t, s, q, WakeBacklog)
				b.set(s.Keys(q)[keys.Messages], true)
			}
			const id = "0b5d4e1e-8f0c-4a57-9d7e-3c1f2a6b7d81" // unsampled: its last digit is not 0
			call := EnqueueCall{Token: "ab01", Sends: new(Sends), Keep: time.Minute, IndexOnly: true, Backlogs: b,
				Messages: []EnqueueMessage{{ID: id, Data: []byte("x"), FreshID: true}}}
			a := Enqueue(ctx, s.RDB, s.Keys(q), call)
			require.NoError(t, a.Err)
			require.Equal(t, []Code{Added}, a.Codes)
			assert.Equal(t, map[string]string{id: "a"}, s.RDB.HGetAll(ctx, s.Key(q, keys.EnqueueReceipts)).Val(), "short %v", short)
			assert.Equal(t, short, b.has(s.Keys(q)[keys.Messages]), "still short, or full")
			// Collected, as a completion does (§11).
			for _, k := range []keys.Index{keys.Messages, keys.UDTs} {
				require.NoError(t, s.RDB.HDel(ctx, s.Key(q, k), id).Err())
			}
			require.NoError(t, s.RDB.LRem(ctx, s.Key(q, keys.MidsReady), 0, id).Err())
			a = Enqueue(ctx, s.RDB, s.Keys(q), call)
			require.NoError(t, a.Err)
			assert.Equal(t, []Code{Added}, a.Codes, "answered from the receipt")
			assert.Equal(t, StatusNone, statusOf(t, s, q, id), "not added anew")
		}
	})
}

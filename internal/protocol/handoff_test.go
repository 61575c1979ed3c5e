package protocol

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoffRecordedWithOutcome: a success's follow-ups are appended to
// handoffs by the script that records it (docs/protocol.md §22), once:
// a resent call (its reply lost) appends nothing more, and a success
// fenced off (lock lost) appends nothing; a batch member's final outcome
// appends its tick, a success 's', a dead letter 'd'.
func TestHandoffRecordedWithOutcome(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "m1", &EnqueueMessage{ID: "m1"})
		mustEnqueue(t, s, q, "m2", &EnqueueMessage{ID: "m2"})
		const p = "ab12"
		r, err := pollAs(t, s, q, p, 1, 0, 2)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 2)
		fu, err := EncodeFollowUps([]FollowUp{{Queue: "next", Msg: EnqueueMessage{ID: "m1/x/0", Data: []byte("v")}}})
		require.NoError(t, err)
		c1 := Completion{ID: "m1", LockedUntil: out["m1"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: fu}
		bad := Completion{ID: "m2", LockedUntil: out["m2"].LockedUntil + 1, Outcome: OutcomeSuccess, FollowUps: fu}

		// Call 2 records both; its reply is lost, and call 3 sends them again.
		r, err = pollAs(t, s, q, p, 2, 1, 0, c1, bad)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false}, r.Recorded, "the fenced one is lock-lost")
		r, err = pollAs(t, s, q, p, 3, 1, 0, c1, bad)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false}, r.Recorded)

		recs := queuetest.List(t, s.RDB, s.Key(q, keys.Handoffs))
		require.Len(t, recs, 1, "one record: not the fenced success's, not the resend's")
		h, err := DecodeHandoff(recs[0])
		require.NoError(t, err)
		require.Equal(t, byte(HandoffFollowUps), h.Kind)
		require.Len(t, h.FollowUps, 1)
		assert.Equal(t, "next", h.FollowUps[0].Queue)
		assert.Equal(t, "m1/x/0", h.FollowUps[0].Msg.ID)
		assert.Equal(t, "v", string(h.FollowUps[0].Msg.Data))
	})
}

// TestHandoffInScript: follow-ups the success's own script enqueues
// (docs/protocol.md §22, "In the script"), to another queue whose keys the
// call passes and to the queue itself, exist exactly when the success
// does: a resent call (same seq, its reply lost; then the next call with
// the outcome still unconfirmed) enqueues nothing more, even once the
// first follow-up was handled and collected; a success fenced off (lock
// lost) enqueues nothing. The relay part of the record goes to handoffs,
// and the target's sleeping worker is woken.
func TestHandoffInScript(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		next := sameSlot(s, q, q+"-next")
		mustEnqueue(t, s, q, "m1", &EnqueueMessage{ID: "m1"})
		mustEnqueue(t, s, q, "m2", &EnqueueMessage{ID: "m2"})
		mustEnqueue(t, s, q, "m4", &EnqueueMessage{ID: "m4"})
		// m4's follow-up to next is there already (as if enqueued by an
		// earlier recording of the same handling): it stays as it is.
		mustEnqueue(t, s, next, "old", &EnqueueMessage{ID: "m4/x/0"})
		sentinelIn := func() string {
			if len(queuetest.List(t, s.RDB, s.Key(next, keys.ISleepA))) > 0 {
				return "a"
			}
			return "b"
		}
		before := sentinelIn()
		const p = "cd34"
		r, err := pollAs(t, s, q, p, 1, 0, 3)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 3)
		relay, err := EncodeFollowUps([]FollowUp{{Queue: "far", Msg: EnqueueMessage{ID: "m1/x/2", Data: []byte("f")}}})
		require.NoError(t, err)
		rec := func(prefix string) []byte {
			return EncodeInScript([]InScriptFollowUp{
				{Target: s.Key(next, keys.Messages), ID: prefix + "/0", Data: []byte("n"), LockTime: 5 * time.Second,
					Metadata: []byte("md")},
				{ID: prefix + "/1", Data: []byte("own")},
			}, relay)
		}
		assert.Equal(t, relay, RelayRecord(rec("m1/x")))
		c1 := Completion{ID: "m1", LockedUntil: out["m1"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: rec("m1/x")}
		bad := Completion{ID: "m2", LockedUntil: out["m2"].LockedUntil + 1, Outcome: OutcomeSuccess, FollowUps: rec("m2/x")}
		c4 := Completion{ID: "m4", LockedUntil: out["m4"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: rec("m4/x")}

		r, err = pollAs(t, s, q, p, 2, 1, 0, c1, bad, c4)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false, true}, r.Recorded, "the fenced one is lock-lost")
		assert.Equal(t, []string{"m1/x/0", "m4/x/0"}, queuetest.List(t, s.RDB, s.Key(next, keys.MidsReady)),
			"m1's added, m4's there before")
		assert.Equal(t, "old", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m4/x/0"), "held: left as it was")
		assert.NotEqual(t, before, sentinelIn(), "next's sleeper woken")
		assert.Equal(t, "n", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m1/x/0"))
		assert.Equal(t, "md", queuetest.HGet(t, s.RDB, s.Key(next, keys.Meta), "m1/x/0"))
		assert.Equal(t, "5000", queuetest.HGet(t, s.RDB, s.Key(next, keys.LockTimes), "m1/x/0"))
		assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.UDTs), "m1/x/0"))
		assert.Equal(t, "own", queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m1/x/1"))

		// next's follow-up is handled and collected: a second enqueue of its
		// id would now be added again.
		rn, err := pollAs(t, s, next, "ef56", 1, 0, 2)
		require.NoError(t, err)
		got := handedOut(rn)
		require.Contains(t, got, "m1/x/0")
		_, err = pollAs(t, s, next, "ef56", 2, 1, 0,
			Completion{ID: "m1/x/0", LockedUntil: got["m1/x/0"].LockedUntil, Outcome: OutcomeSuccess})
		require.NoError(t, err)
		require.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m1/x/0"), "collected")

		// The call sent again, as it was, and then the next call.
		for _, seq := range []uint64{2, 3} {
			r, err = pollAs(t, s, q, p, seq, 1, 0, c1, bad, c4)
			require.NoError(t, err)
			assert.Equal(t, []bool{true, false, true}, r.Recorded, "answered from the receipt")
		}
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m1/x/0"), "not enqueued again")
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m2/x/0"), "the fenced success enqueued nothing")
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m2/x/1"))
		ready := queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady))
		assert.Equal(t, 1, countOf(ready, "m1/x/1"), "the own follow-up once")
		assert.Equal(t, 1, countOf(ready, "m4/x/1"))
		assert.Zero(t, countOf(ready, "m2/x/1"))
		assert.Equal(t, []string{string(relay), string(relay)}, queuetest.List(t, s.RDB, s.Key(q, keys.Handoffs)),
			"the relay parts once each")

		// A call without the target's keys is refused before it writes.
		mustEnqueue(t, s, q, "m3", &EnqueueMessage{ID: "m3"})
		r, err = pollAs(t, s, q, "ab78", 1, 0, 5)
		require.NoError(t, err)
		m3 := handedOut(r)["m3"]
		require.NotZero(t, m3.LockedUntil)
		a := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, Poller: "ab78", Seq: 2, Confirmed: 1,
			Completions: []Completion{{ID: "m3", LockedUntil: m3.LockedUntil, Outcome: OutcomeSuccess, FollowUps: rec("m3/x")}}}
		err = dequeueScript.Run(ctx, s.RDB, s.Keys(q), a.argv(nil, 0)...).Err()
		require.ErrorContains(t, err, "MQOUTCOME no keys for the follow-ups")
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m3/x/1"))
		// A record cut short (a field's length past its end) is refused
		// before anything is written, however its fields are read.
		ks, first := withInScriptKeys(s.Keys(q), []Completion{{FollowUps: rec("m3/x")}})
		for _, cut := range []int{6, 12, 30} {
			full := rec("m3/x")
			a.Completions[0].FollowUps = full[:len(full)-len(relay)-cut]
			err = dequeueScript.Run(ctx, s.RDB, ks, a.argv(ks, first)...).Err()
			require.ErrorContains(t, err, "MQOUTCOME a damaged follow-ups record", "cut %d", cut)
		}
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m3/x/1"))
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m3/x/0"))
		assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Locks), "m3"), "m3 still locked")
	})
}

// sameSlot answers a queue named name or after it whose keys share q's
// slot, on a cluster (keys.Slot), so that one script may touch both.
func sameSlot(s *queuetest.Server, q, name string) string {
	want := keys.Slot(s.Key(q, keys.Messages))
	for i := 0; ; i++ {
		n := fmt.Sprintf("%s-%d", name, i)
		if !s.Cluster || keys.Slot(s.Key(n, keys.Messages)) == want {
			return n
		}
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestBatchTicks: a batch member's success and dead letter each append
// one tick; batch-tick.lua counts a tick once, however often delivered,
// and the last one appends the completion record once.
// TestHandoffInScriptOne: a call whose one success hands off one
// follow-up to a queue (the script's path for a single follow-up, by
// HSETNX) writes its lock time and metadata too, and nothing for one its
// queue holds already.
func TestHandoffInScriptOne(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		next := sameSlot(s, q, q+"-next")
		mustEnqueue(t, s, q, "m1", &EnqueueMessage{ID: "m1"})
		mustEnqueue(t, s, q, "m2", &EnqueueMessage{ID: "m2"})
		mustEnqueue(t, s, next, "old", &EnqueueMessage{ID: "m2/x/0"})
		r, err := pollAs(t, s, q, "ab12", 1, 0, 2)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 2)
		seq := uint64(1)
		for _, id := range []string{"m1", "m2"} {
			rec := EncodeInScript([]InScriptFollowUp{{Target: s.Key(next, keys.Messages), ID: id + "/x/0", Data: []byte("n"),
				LockTime: 5 * time.Second, Metadata: []byte("md")}}, nil)
			seq++
			r, err = pollAs(t, s, q, "ab12", seq, seq-1, 0,
				Completion{ID: id, LockedUntil: out[id].LockedUntil, Outcome: OutcomeSuccess, FollowUps: rec})
			require.NoError(t, err)
			assert.Equal(t, []bool{true}, r.Recorded)
		}
		assert.Equal(t, "n", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m1/x/0"))
		assert.Equal(t, "md", queuetest.HGet(t, s.RDB, s.Key(next, keys.Meta), "m1/x/0"))
		assert.Equal(t, "5000", queuetest.HGet(t, s.RDB, s.Key(next, keys.LockTimes), "m1/x/0"))
		assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.UDTs), "m1/x/0"))
		assert.Equal(t, "old", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m2/x/0"), "held: left as it was")
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Meta), "m2/x/0"))
		assert.Equal(t, []string{"m1/x/0", "m2/x/0"}, queuetest.List(t, s.RDB, s.Key(next, keys.MidsReady)))
	})
}

// TestHandoffInScriptSameID: follow-ups of one call to one queue, all
// recorded and none held there before (the script's usual path, one HSET
// of them all), get their lock times and metadata each; one id twice
// among them (ids the client was given) is enqueued once, as the first
// of them, as an enqueue of the second would find it.
func TestHandoffInScriptSameID(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		next := sameSlot(s, q, q+"-next")
		target := s.Key(next, keys.Messages)
		for _, id := range []string{"m1", "m2", "m3"} {
			mustEnqueue(t, s, q, id, &EnqueueMessage{ID: id})
		}
		r, err := pollAs(t, s, q, "ab12", 1, 0, 3)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 3)
		fu := map[string][]InScriptFollowUp{
			"m1": {{Target: target, ID: "a", Data: []byte("a1"), LockTime: 5 * time.Second},
				{Target: target, ID: "dup", Data: []byte("first"), LockTime: 7 * time.Second, Metadata: []byte("md1")}},
			"m2": {{Target: target, ID: "b", Data: []byte("b1"), Metadata: []byte("mdb")}},
			"m3": {{Target: target, ID: "dup", Data: []byte("second"), Metadata: []byte("md2")},
				{Target: target, ID: "c", Data: []byte("c1")}},
		}
		var cs []Completion
		for _, id := range []string{"m1", "m2", "m3"} {
			cs = append(cs, Completion{ID: id, LockedUntil: out[id].LockedUntil, Outcome: OutcomeSuccess,
				FollowUps: EncodeInScript(fu[id], nil)})
		}
		r, err = pollAs(t, s, q, "ab12", 2, 1, 0, cs...)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true}, r.Recorded)
		assert.Equal(t, []string{"c", "b", "dup", "a"}, queuetest.List(t, s.RDB, s.Key(next, keys.MidsReady)),
			"each once, in order")
		for id, want := range map[string][3]string{
			"a": {"a1", "5000", ""}, "dup": {"first", "7000", "md1"}, "b": {"b1", "", "mdb"}, "c": {"c1", "", ""},
		} {
			assert.Equal(t, want[0], queuetest.HGet(t, s.RDB, target, id), id)
			assert.Equal(t, want[1], queuetest.HGet(t, s.RDB, s.Key(next, keys.LockTimes), id), id)
			assert.Equal(t, want[2], queuetest.HGet(t, s.RDB, s.Key(next, keys.Meta), id), id)
			assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.UDTs), id), id)
		}

		// Sent again (its reply lost): nothing more.
		r, err = pollAs(t, s, q, "ab12", 2, 1, 0, cs...)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true}, r.Recorded)
		assert.Len(t, queuetest.List(t, s.RDB, s.Key(next, keys.MidsReady)), 4)
	})
}

func TestBatchTicks(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q, cq := queuetest.QueueName(t), queuetest.QueueName(t)+"-done"
		ref := BatchRef("b1", cq)
		require.NoError(t, BatchCreate(ctx, s.RDB, s.Keys(cq), "b1", 2,
			FollowUp{Queue: cq, Msg: EnqueueMessage{ID: "done"}}, [][]string{s.Keys(q)}))
		mustEnqueue(t, s, q, "m1", &EnqueueMessage{ID: "m1", Policy: Policy{Batch: ref}})
		mustEnqueue(t, s, q, "m2", &EnqueueMessage{ID: "m2", Policy: Policy{Batch: ref}})
		r, err := pollAs(t, s, q, "ab12", 1, 0, 2)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 2)
		r, err = pollAs(t, s, q, "ab12", 2, 1, 0,
			Completion{ID: "m1", LockedUntil: out["m1"].LockedUntil, Outcome: OutcomeSuccess},
			Completion{ID: "m2", LockedUntil: out["m2"].LockedUntil, Outcome: OutcomeDead, Error: "boom"})
		require.NoError(t, err)
		require.Equal(t, []bool{true, true}, r.Recorded)

		recs := queuetest.List(t, s.RDB, s.Key(q, keys.Handoffs))
		require.Len(t, recs, 2)
		var ticks []MemberTick
		for _, raw := range recs {
			h, err := DecodeHandoff(raw)
			require.NoError(t, err)
			require.Equal(t, byte(HandoffTick), h.Kind)
			assert.Equal(t, "b1", h.Tick.Batch)
			assert.Equal(t, cq, h.Tick.Queue)
			ticks = append(ticks, h.Tick)
		}
		assert.False(t, ticks[0].Dead)
		assert.True(t, ticks[1].Dead)

		tick := func(tk MemberTick) string {
			a, err := BatchTick(ctx, s.RDB, s.Keys(cq), tk, 3600e9)
			require.NoError(t, err)
			return a
		}
		assert.Equal(t, TickCounted, tick(ticks[0]))
		assert.Equal(t, TickSeen, tick(ticks[0]), "delivered again: counted once")
		assert.Equal(t, TickComplete, tick(ticks[1]))
		assert.Equal(t, TickSeen, tick(ticks[1]))
		st, err := BatchRead(ctx, s.RDB, s.Keys(cq), "b1")
		require.NoError(t, err)
		assert.Equal(t, BatchState{Found: true, Completion: st.Completion, Total: 2, Succeeded: 1, Dead: 1, Created: st.Created, Done: st.Done}, st)
		assert.NotZero(t, st.Done)
		assert.Equal(t, []string{"Cb1"}, queuetest.List(t, s.RDB, s.Key(cq, keys.Handoffs)), "the completion, once")
	})
}

// TestBatchTrimmed: a completed batch is kept for the keep time given to
// the ticks, then dropped, with its ticks' ids, by a later tick of the
// queue.
func TestBatchTrimmed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		cq := queuetest.QueueName(t)
		for _, b := range []string{"b1", "b2"} {
			require.NoError(t, BatchCreate(ctx, s.RDB, s.Keys(cq), b, 1, FollowUp{Queue: cq, Msg: EnqueueMessage{ID: b}}, nil))
		}
		a, err := BatchTick(ctx, s.RDB, s.Keys(cq), MemberTick{ID: "m1/1", Batch: "b1", Queue: cq}, time.Hour)
		require.NoError(t, err)
		require.Equal(t, TickComplete, a)
		st, err := BatchRead(ctx, s.RDB, s.Keys(cq), "b1")
		require.NoError(t, err)
		require.True(t, st.Found, "kept while young")

		s.AwaitClock(t, 5)
		a, err = BatchTick(ctx, s.RDB, s.Keys(cq), MemberTick{ID: "m2/1", Batch: "b2", Queue: cq}, time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, TickComplete, a)
		st, err = BatchRead(ctx, s.RDB, s.Keys(cq), "b1")
		require.NoError(t, err)
		assert.False(t, st.Found, "dropped once older than the keep time")
		n, err := s.RDB.HLen(ctx, s.Key(cq, keys.Batches)).Result()
		require.NoError(t, err)
		assert.EqualValues(t, 5, n, "b2's fields only: the message, n, at, s, done")
		seen, err := s.RDB.ZRange(ctx, s.Key(cq, keys.BatchSeen), 0, -1).Result()
		require.NoError(t, err)
		assert.Equal(t, []string{"done:b2", "m2/1"}, seen, "b1's entries gone")
	})
}

// TestFollowUpsRoundTrip: a follow-ups record decodes to what was
// encoded, every field of the messages included.
func TestFollowUpsRoundTrip(t *testing.T) {
	t.Parallel()
	fs := []FollowUp{
		{Queue: "a", Msg: EnqueueMessage{ID: "p/1/0", Data: []byte("x\x00\n")}},
		{Queue: "b", Msg: EnqueueMessage{ID: "id", Data: []byte{}, InitialBackoff: time.Second, LockTime: 2 * time.Second,
			CanUpdate: true, ResetInitialBackoff: true, At: 1234, Metadata: []byte("meta"),
			Policy:   Policy{MaxAttempts: 3, Backoff: BackoffSpec{Kind: "exp", Base: time.Second, Max: time.Minute, Jitter: 0.5}, Timeout: time.Minute, UniqueFor: time.Hour, Batch: "b\nq"},
			Priority: PriorityHigh}},
	}
	raw, err := EncodeFollowUps(fs)
	require.NoError(t, err)
	h, err := DecodeHandoff(string(raw))
	require.NoError(t, err)
	require.Equal(t, byte(HandoffFollowUps), h.Kind)
	fs[1].Msg.Data = nil // (empty bytes decode as nil)
	h.FollowUps[1].Msg.Data = nil
	assert.Equal(t, fs, h.FollowUps)
	_, err = DecodeHandoff(string(raw[:len(raw)-1]))
	assert.ErrorIs(t, err, ErrUnexpectedReply, "truncated")
}

// TestWithInScriptKeys: a poll call's keys are the queue's own (all or
// the lean few), then each other target's eight once, in order of first
// mention, whatever keys were asked for before (the cache is keyed by
// queue, key count and target).
func TestWithInScriptKeys(t *testing.T) {
	all := keys.All("wik", false)
	next, far := keys.All("wik-next", false), keys.All("wik-far", false)
	rec := func(targets ...string) Completion {
		var in []InScriptFollowUp
		for i, tg := range targets {
			in = append(in, InScriptFollowUp{Target: tg, ID: strconv.Itoa(i)})
		}
		return Completion{FollowUps: EncodeInScript(in, nil)}
	}
	eight := func(ks []string) []string {
		var out []string
		for _, i := range inScriptKeys {
			out = append(out, ks[i])
		}
		return out
	}
	for range 2 { // (the second time from the cache)
		for _, own := range [][]string{all[:LeanKeys], all} {
			ks, first := withInScriptKeys(own, []Completion{rec("", all[keys.Messages])})
			assert.Equal(t, own, ks, "the queue's own follow-ups need no more keys")
			assert.Zero(t, first)

			ks, first = withInScriptKeys(own, []Completion{rec(next[keys.Messages]), rec("", next[keys.Messages])})
			assert.Equal(t, append(slices.Clone(own), eight(next)...), ks)
			assert.Equal(t, len(own)+1, first)

			ks, first = withInScriptKeys(own, []Completion{rec(far[keys.Messages], next[keys.Messages]), rec(far[keys.Messages])})
			assert.Equal(t, append(append(slices.Clone(own), eight(far)...), eight(next)...), ks)
			assert.Equal(t, len(own)+1, first)
		}
	}
}

// TestHandoffInScriptWakeBacklog: docs/protocol.md §5 and §22. The
// follow-ups a call enqueues in the script wake a sleeper of their
// target queue by the enqueues' rule: k follow-ups pushed onto a
// mids-ready that held WakeBacklog*k-1 ids move the sentinel, onto one
// that held WakeBacklog*k none; so for another queue (move_sentinel) and
// for the queue itself (as an outcome wakes), through the full poll and
// the lean one.
func TestHandoffInScriptWakeBacklog(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		for _, lean := range []bool{false, true} {
			for _, own := range []bool{false, true} {
				for _, k := range []int{1, 2} {
					for _, below := range []bool{true, false} {
						backlog := WakeBacklog * k
						if below {
							backlog--
						}
						name := fmt.Sprintf("lean %v, own %v, %d a call, %d ready before", lean, own, k, backlog)
						q := queuetest.QueueName(t) + fmt.Sprintf(":%v:%v:%d:%v", lean, own, k, below)
						target := sameSlot(s, q, q+"-next")
						if own {
							target = q
						}
						for i := range k {
							mustEnqueue(t, s, q, "m", &EnqueueMessage{ID: fmt.Sprintf("m%d", i)})
						}
						a := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10, MaxHandles: k,
							Poller: randomToken(), Seq: 1}
						if lean {
							a.Lean = new(Lean)
						}
						r, err := Poll(ctx, s.RDB, s.Keys(q), a)
						require.NoError(t, err, name)
						out := handedOut(r)
						require.Len(t, out, k, name)
						// the target's backlog, and its sentinel in isleep-a
						backlogged(t, s, target, backlog)
						a.Seq, a.Confirmed, a.MaxSteps, a.MaxHandles = 2, 1, 0, 0
						for id, st := range out {
							f := InScriptFollowUp{ID: id + "/x/0", Data: []byte("n")}
							if !own {
								f.Target = s.Key(target, keys.Messages)
							}
							a.Completions = append(a.Completions, Completion{ID: id, LockedUntil: st.LockedUntil,
								Outcome: OutcomeSuccess, FollowUps: EncodeInScript([]InScriptFollowUp{f}, nil)})
						}
						r, err = Poll(ctx, s.RDB, s.Keys(q), a)
						require.NoError(t, err, name)
						require.Equal(t, slices.Repeat([]bool{true}, k), r.Recorded, name)
						require.Len(t, queuetest.List(t, s.RDB, s.Key(target, keys.MidsReady)), backlog+k, name)
						if lean {
							require.False(t, a.Lean.Full(), "%s: the lean call stayed lean", name)
						}
						want := "a"
						if below {
							want = "b"
						}
						assert.Equal(t, want, sentinel(t, s, target), name)
					}
				}
			}
		}
	})
}

// TestHandoffInScriptDamagedNamed: docs/protocol.md §22. The 'S' records
// of a call are parsed before anything is written; a record cut short is
// refused naming its own message, not a sound record's before it, and an
// unknown outcome before it is named first, as the outcomes are checked
// in order.
func TestHandoffInScriptDamagedNamed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		for _, id := range []string{"a", "b", "c"} {
			mustEnqueue(t, s, q, id, &EnqueueMessage{ID: id})
		}
		r, err := pollAs(t, s, q, "ab90", 1, 0, 3)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 3)
		rec := func(id string) []byte {
			return EncodeInScript([]InScriptFollowUp{{ID: id + "/x/0", Data: []byte("n")}}, nil)
		}
		good, cut := rec("a"), rec("b")
		cut = cut[:len(cut)-3]
		cs := []Completion{
			{ID: "a", LockedUntil: out["a"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: good},
			{ID: "b", LockedUntil: out["b"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: cut},
			{ID: "c", LockedUntil: out["c"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: rec("c")},
		}
		a := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, Poller: "ab90", Seq: 2, Confirmed: 1, Completions: cs}
		ks, first := withInScriptKeys(s.Keys(q), cs)
		err = dequeueScript.Run(ctx, s.RDB, ks, a.argv(ks, first)...).Err()
		require.ErrorContains(t, err, `MQOUTCOME a damaged follow-ups record for message "b"`)
		a.Completions[0].Outcome = "nonsense"
		err = dequeueScript.Run(ctx, s.RDB, ks, a.argv(ks, first)...).Err()
		require.ErrorContains(t, err, `MQOUTCOME unknown outcome "nonsense" for message "a"`)
		for _, id := range []string{"a/x/0", "c/x/0"} {
			assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), id), "nothing written")
		}
	})
}

package protocol

import (
	"context"
	"encoding"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoffInBlock: docs/protocol.md §22, "The block". Usual follow-ups
// (no lock time, metadata or relay part) travel in the call's block, by
// target group, their successes' fields marks naming the groups; the
// script writes them as the records' path does: one id twice enqueued
// once as the first, an id held left as it was, a fenced success's
// follow-ups skipped while the others' in its group are written, and a
// call sent again, or its outcomes again in the next call, enqueuing
// nothing more.
func TestHandoffInBlock(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		next := sameSlot(s, q, q+"-next")
		other := sameSlot(s, q, q+"-other")
		for _, id := range []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"} {
			mustEnqueue(t, s, q, id, &EnqueueMessage{ID: id})
		}
		mustEnqueue(t, s, next, "old", &EnqueueMessage{ID: "m4/x/0"})
		const p = "bb01"
		r, err := pollAs(t, s, q, p, 1, 0, 7)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 7)
		fu := func(target string, id, data string) InScriptFollowUp {
			if target != "" {
				target = s.Key(target, keys.Messages)
			}
			return InScriptFollowUp{Target: target, ID: id, Data: []byte(data)}
		}
		success := func(id string, token int64, fs ...InScriptFollowUp) Completion {
			return Completion{ID: id, LockedUntil: token, Outcome: OutcomeSuccess, FollowUps: EncodeInScript(fs, nil)}
		}
		c1 := success("m1", out["m1"].LockedUntil, fu(next, "m1/x/0", "n1"), fu("", "m1/x/1", "o1"))
		c3 := success("m3", out["m3"].LockedUntil, fu(other, "m3/x/0", "t3"))
		c5 := success("m5", out["m5"].LockedUntil, fu(next, "dup", "d1"), fu(next, "dup", "d2"))
		first := []Completion{c1, c3, c5}

		// The call's arguments: marks, and the block by group (the queue
		// itself, next, other), whatever the completions' order.
		ks, at := withInScriptKeys(s.Keys(q)[:LeanKeys:LeanKeys], first)
		fields, block, ok := inScriptBlock(ks, at, first)
		require.True(t, ok)
		assert.Equal(t, []any{"B1,0", "B2", "B1,1"}, fields)
		assert.Equal(t, []string{"m1/x/1", "o1", "m1/x/0", "n1", "dup", "d1", "dup", "d2", "m3/x/0", "t3"}, blockTexts(t, block))

		mids := func(queue string) []string { return queuetest.List(t, s.RDB, s.Key(queue, keys.MidsReady)) }
		collected := false
		check := func() {
			t.Helper()
			ready := mids(next)
			assert.Equal(t, []string{"dup", "m1/x/0", "m4/x/0"}, ready[len(ready)-3:], "in order")
			assert.Equal(t, 1, countOf(ready, "dup"), "one id twice: once")
			assert.Equal(t, "d1", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "dup"), "the first of one id twice")
			assert.Equal(t, "n1", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m1/x/0"))
			if collected {
				assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(other, keys.Messages), "m3/x/0"), "not enqueued again")
			} else {
				assert.Equal(t, 1, countOf(mids(other), "m3/x/0"))
				assert.Equal(t, "t3", queuetest.HGet(t, s.RDB, s.Key(other, keys.Messages), "m3/x/0"))
			}
			assert.Equal(t, 1, countOf(mids(q), "m1/x/1"))
			assert.Equal(t, "o1", queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m1/x/1"))
			for _, k := range [][2]string{{next, "dup"}, {next, "m1/x/0"}, {q, "m1/x/1"}} {
				at, err := strconv.ParseInt(queuetest.HGet(t, s.RDB, s.Key(k[0], keys.UDTs), k[1]), 10, 64)
				assert.NoError(t, err, "%v: first enqueued at a time in ms", k)
				assert.Greater(t, at, int64(1e12), k)
			}
		}
		r, err = pollAs(t, s, q, p, 2, 1, 0, first...)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true}, r.Recorded)
		check()
		// other's follow-up is handled and collected: an enqueue of its id
		// would now add it again.
		ro, err := pollAs(t, s, other, "bb03", 1, 0, 1)
		require.NoError(t, err)
		got := handedOut(ro)["m3/x/0"]
		require.NotZero(t, got.LockedUntil)
		_, err = pollAs(t, s, other, "bb03", 2, 1, 0,
			Completion{ID: "m3/x/0", LockedUntil: got.LockedUntil, Outcome: OutcomeSuccess})
		require.NoError(t, err)
		require.Empty(t, queuetest.HGet(t, s.RDB, s.Key(other, keys.Messages), "m3/x/0"), "collected")
		collected = true
		// Sent again as it was (its reply lost), then its outcomes again
		// in the next call: nothing more.
		r, err = pollAs(t, s, q, p, 2, 1, 0, first...)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true}, r.Recorded, "answered from the receipt")
		// Its outcomes again, first, beside a new one whose follow-ups
		// share their groups: only the new one's are written.
		c6 := success("m6", out["m6"].LockedUntil, fu(next, "m6/x/0", "n6"), fu(other, "m6/x/2", "t6"),
			fu("", "m6/x/1", "o6"))
		r, err = pollAs(t, s, q, p, 3, 1, 0, append(first, c6)...)
		require.NoError(t, err)
		assert.Equal(t, []bool{true, true, true, true}, r.Recorded, "the first three answered from the receipt")
		assert.Equal(t, []string{"m6/x/0", "dup", "m1/x/0", "m4/x/0"}, mids(next))
		assert.Equal(t, "n6", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m6/x/0"))
		assert.Equal(t, "o6", queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "m6/x/1"))
		assert.Equal(t, []string{"m6/x/2"}, mids(other), "m3's, collected, not enqueued again")
		assert.Equal(t, "t6", queuetest.HGet(t, s.RDB, s.Key(other, keys.Messages), "m6/x/2"))
		assert.Equal(t, "d1", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "dup"), "not written again")
		assert.Equal(t, 1, countOf(mids(q), "m6/x/1"))
		check()

		// A follow-up whose id its queue holds, in the usual call: left as
		// it was, the others written.
		c4 := success("m4", out["m4"].LockedUntil, fu(next, "m4/x/0", "n4"), fu(other, "m4/x/1", "t4"))
		r, err = pollAs(t, s, q, p, 4, 3, 0, c4)
		require.NoError(t, err)
		assert.Equal(t, []bool{true}, r.Recorded)
		assert.Equal(t, "old", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m4/x/0"), "held: left as it was")
		assert.Equal(t, "t4", queuetest.HGet(t, s.RDB, s.Key(other, keys.Messages), "m4/x/1"))
		assert.Equal(t, 1, countOf(mids(other), "m4/x/1"))
		check()
		// A fenced success beside a recorded one: the fenced one's
		// follow-up is skipped, the other's in its group written.
		bad := success("m2", out["m2"].LockedUntil+1, fu(next, "m2/x/0", "n2"))
		c7 := success("m7", out["m7"].LockedUntil, fu(next, "m7/x/0", "n7"))
		r, err = pollAs(t, s, q, p, 5, 4, 0, bad, c7)
		require.NoError(t, err)
		assert.Equal(t, []bool{false, true}, r.Recorded)
		assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m2/x/0"), "fenced off: nothing")
		assert.Equal(t, "n7", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "m7/x/0"))
		assert.Equal(t, []string{"m7/x/0", "m6/x/0"}, mids(next)[:2])
		check()
	})
}

// TestHandoffInBlockDamaged: a call whose marks or block do not match
// (a group the call has no keys for, a mark not as the client writes it,
// a block too short or too long, marks beside 'S' records to enqueue
// here) is refused before anything is written.
func TestHandoffInBlockDamaged(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		next := sameSlot(s, q, q+"-next")
		for _, id := range []string{"a", "b"} {
			mustEnqueue(t, s, q, id, &EnqueueMessage{ID: id})
		}
		r, err := pollAs(t, s, q, "bb02", 1, 0, 2)
		require.NoError(t, err)
		out := handedOut(r)
		require.Len(t, out, 2)
		cs := []Completion{
			{ID: "a", LockedUntil: out["a"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: EncodeInScript(
				[]InScriptFollowUp{{Target: s.Key(next, keys.Messages), ID: "a/x/0", Data: []byte("n")}}, nil)},
			{ID: "b", LockedUntil: out["b"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: EncodeInScript(
				[]InScriptFollowUp{{ID: "b/x/0", Data: []byte("o")}}, nil)},
		}
		a := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, Poller: "bb02", Seq: 2, Confirmed: 1, Completions: cs}
		ks, first := withInScriptKeys(s.Keys(q), cs)
		good := a.argv(ks, first)
		field := func(i int) int { return 24 + 7*i } // (ARGV[19+7i+6], from 0)
		require.Equal(t, "B1", good[field(0)])
		require.Equal(t, "B0", good[field(1)])
		for name, c := range map[string]struct {
			edit func([]any) []any
			want string
		}{
			"group past the call's": {func(x []any) []any { x[field(0)] = "B2"; return x }, `a damaged follow-ups mark for message "a"`},
			"leading zero":          {func(x []any) []any { x[field(0)] = "B01"; return x }, `a damaged follow-ups mark for message "a"`},
			"no group":              {func(x []any) []any { x[field(1)] = "B"; return x }, `a damaged follow-ups mark for message "b"`},
			"empty group":           {func(x []any) []any { x[field(1)] = "B0,"; return x }, `a damaged follow-ups mark for message "b"`},
			"block too short":       {func(x []any) []any { return x[:len(x)-1] }, "a damaged follow-ups block"},
			"block too long":        {func(x []any) []any { return append(x, "c/x/0", "p") }, "a damaged follow-ups block"},
			"beside a record": {func(x []any) []any {
				x[field(1)] = cs[1].FollowUps
				return x[:len(x)-2]
			}, "follow-ups both in records and in the block"},
		} {
			args := c.edit(append([]any(nil), good...))
			err := dequeueScript.Run(ctx, s.RDB, ks, args...).Err()
			require.ErrorContains(t, err, "MQOUTCOME "+c.want, name)
			assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "a/x/0"), name)
			assert.Empty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "b/x/0"), name)
			assert.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Locks), "a"), "%s: the outcome not recorded", name)
		}
		// The call as the client sends it.
		require.NoError(t, dequeueScript.Run(ctx, s.RDB, ks, good...).Err())
		assert.Equal(t, "n", queuetest.HGet(t, s.RDB, s.Key(next, keys.Messages), "a/x/0"))
		assert.Equal(t, "o", queuetest.HGet(t, s.RDB, s.Key(q, keys.Messages), "b/x/0"))
	})
}

// TestInScriptBlock: a call's records go in a block only when every
// in-script record of the call can (no lock time, no metadata, no part
// for the relay, keys for every target, a record not damaged); records
// for the relay alone stay as they are beside the marks.
func TestInScriptBlock(t *testing.T) {
	own := make([]string, LeanKeys)
	own[keys.Messages] = "q:messages"
	ks := append(append([]string(nil), own...), "t:messages", "t:udts", "t:mids-ready", "t:mid-circle",
		"t:isleep-a", "t:isleep-b", "t:lock-times", "t:meta")
	first := len(own) + 1
	relay, err := EncodeFollowUps([]FollowUp{{Queue: "far", Msg: EnqueueMessage{ID: "r", Data: []byte("f")}}})
	require.NoError(t, err)
	usual := Completion{FollowUps: EncodeInScript([]InScriptFollowUp{{Target: "t:messages", ID: "a", Data: []byte("1")}}, nil)}
	fields, block, ok := inScriptBlock(ks, first, []Completion{usual, {FollowUps: relay}, {}})
	require.True(t, ok)
	assert.Equal(t, []any{"B1", relay, []byte(nil)}, fields)
	assert.Equal(t, []string{"a", "1"}, blockTexts(t, block))
	for name, f := range map[string]InScriptFollowUp{
		"lock time":  {ID: "b", Data: []byte("2"), LockTime: time.Second},
		"metadata":   {ID: "b", Data: []byte("2"), Metadata: []byte("m")},
		"no keys":    {Target: "u:messages", ID: "b", Data: []byte("2")},
		"no keys, 0": {Target: "u:messages", ID: "b", Data: []byte("2")},
	} {
		at := first
		if name == "no keys, 0" {
			at = 0
		}
		_, _, ok := inScriptBlock(ks, at, []Completion{usual, {FollowUps: EncodeInScript([]InScriptFollowUp{f}, nil)}})
		assert.False(t, ok, name)
	}
	withRelay := EncodeInScript([]InScriptFollowUp{{ID: "b", Data: []byte("2")}}, relay)
	_, _, ok = inScriptBlock(ks, first, []Completion{usual, {FollowUps: withRelay}})
	assert.False(t, ok, "a part for the relay")
	damaged := EncodeInScript([]InScriptFollowUp{{ID: "b", Data: []byte("2")}}, nil)
	_, _, ok = inScriptBlock(ks, first, []Completion{usual, {FollowUps: damaged[:len(damaged)-2]}})
	assert.False(t, ok, "damaged")
	_, _, ok = inScriptBlock(ks, first, []Completion{{FollowUps: relay}})
	assert.False(t, ok, "nothing to enqueue here")
}

// blockTexts answers the arguments of a call's block as go-redis writes
// them.
func blockTexts(t *testing.T, block []any) []string {
	t.Helper()
	var out []string
	for _, v := range block {
		m, ok := v.(encoding.BinaryMarshaler)
		require.True(t, ok, "%T", v)
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

package protocol

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leanPoller polls one queue as a worker's polling loop does: numbered
// calls, each confirming the one before, on the client's lean state.
type leanPoller struct {
	t    *testing.T
	s    *queuetest.Server
	q    string
	lean *Lean
	id   string
	seq  uint64
}

func (p *leanPoller) poll(steps int, cs ...Completion) PollReply {
	p.t.Helper()
	p.seq++
	r, err := Poll(context.Background(), p.s.RDB, p.s.Keys(p.q), PollArgs{LockTime: time.Minute, MaxSteps: steps,
		Completions: cs, Poller: p.id, Seq: p.seq, Confirmed: p.seq - 1, Held: NotTold, Lean: p.lean})
	require.NoError(p.t, err)
	return r
}

// handled answers the handlings the queue's history counted (§17): each
// outcome recorded once counts once.
func handled(t *testing.T, s *queuetest.Server, q string) int {
	t.Helper()
	h, err := s.RDB.HGetAll(context.Background(), s.Key(q, keys.History)).Result()
	require.NoError(t, err)
	n := 0
	for f, v := range h {
		if regexp.MustCompile(`^\d+p$`).MatchString(f) {
			x, _ := strconv.Atoi(v)
			n += x
		}
	}
	return n
}

// TestLeanPollSwitchesToEveryKey: a queue polled with the lean key set
// (§4) switches to every key on the first use of each extension with keys
// of its own, whoever marked it, and the call that found it out is sent
// again without being applied twice: every outcome is recorded once, and
// what the extension keeps of the message is kept or collected with it.
func TestLeanPollSwitchesToEveryKey(t *testing.T) {
	ctx := context.Background()
	s := queuetest.RealServer(t)
	start := func(t *testing.T) (*leanPoller, []Step) {
		q := queuetest.QueueName(t)
		for i := range 4 {
			mustEnqueue(t, s, q, i, &EnqueueMessage{ID: "m" + strconv.Itoa(i)})
		}
		p := &leanPoller{t: t, s: s, q: q, lean: new(Lean), id: randomToken()}
		r := p.poll(2)
		require.Len(t, r.Steps, 2)
		require.False(t, p.lean.Full(), "a queue without extensions stays lean")
		return p, r.Steps
	}
	success := func(st Step) Completion {
		return Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}
	}
	// finish hands out and completes the rest, lean or not, and checks
	// that every message was handled once and none is left.
	finish := func(t *testing.T, p *leanPoller, want int) {
		for range 4 {
			r := p.poll(1)
			for _, st := range r.Steps {
				if st.Kind == StepHandle {
					p.poll(0, success(st))
				}
			}
		}
		assert.Equal(t, want, handled(t, s, p.q), "outcomes recorded")
		n, err := s.RDB.HLen(ctx, s.Key(p.q, keys.Messages)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "messages left")
	}

	t.Run("limits", func(t *testing.T) {
		p, held := start(t)
		_, err := SetLimits(ctx, s.RDB, s.Keys(p.q), Limits{Concurrency: "1"})
		require.NoError(t, err)
		r := p.poll(4, success(held[0]), success(held[1]))
		assert.True(t, p.lean.Limits(), "a queue with limits alone goes to dequeue-limits")
		assert.Equal(t, []bool{true, true}, r.Recorded)
		var handles int
		for _, st := range r.Steps {
			if st.Kind == StepHandle {
				handles++
				p.poll(0, success(st))
			}
		}
		assert.Equal(t, 1, handles, "the concurrency limit holds from the switch on")
		assert.True(t, p.lean.Limits())
		finish(t, p, 4)
		assert.True(t, p.lean.Limits())
	})

	t.Run("limits, then a cancel", func(t *testing.T) {
		p, held := start(t)
		_, err := SetLimits(ctx, s.RDB, s.Keys(p.q), Limits{Concurrency: "2"})
		require.NoError(t, err)
		r := p.poll(2, success(held[0]), success(held[1]))
		require.True(t, p.lean.Limits())
		out := handed(r)
		require.Len(t, out, 2, "two slots, taken by dequeue-limits")
		slots := func() int64 {
			n, err := s.RDB.HGet(ctx, s.Key(p.q, keys.SlotCounts), "q").Int64()
			if errors.Is(err, redis.Nil) {
				return 0 // (a count of 0 is not kept)
			}
			require.NoError(t, err)
			return n
		}
		require.Equal(t, int64(2), slots())
		a, err := Cancel(ctx, s.RDB, s.Keys(p.q), out[0].ID)
		require.NoError(t, err)
		require.Equal(t, CancelSignalled, a)
		r = p.poll(0, success(out[0]), success(out[1]))
		assert.True(t, p.lean.Full(), "a cancel takes the queue from dequeue-limits to every extension")
		assert.Equal(t, []bool{true, false}, r.Cancelled, "the cancel stands over the success")
		assert.Equal(t, []bool{true, true}, r.Recorded)
		assert.Zero(t, slots(), "both slots freed, once each")
		finish(t, p, 4)
	})

	t.Run("limits, then a result", func(t *testing.T) {
		p, held := start(t)
		_, err := SetLimits(ctx, s.RDB, s.Keys(p.q), Limits{Concurrency: "2"})
		require.NoError(t, err)
		p.poll(0)
		require.True(t, p.lean.Limits())
		c := success(held[0])
		c.Result = []byte("forty-two")
		r := p.poll(0, c, success(held[1]))
		assert.True(t, p.lean.Full(), "a result needs every extension")
		assert.Equal(t, []bool{true, true}, r.Recorded)
		rec, err := ReadResult(ctx, s.RDB, s.Keys(p.q), held[0].ID)
		require.NoError(t, err)
		assert.Equal(t, "forty-two", string(rec.Data))
		finish(t, p, 4)
	})

	t.Run("cancel", func(t *testing.T) {
		p, held := start(t)
		a, err := Cancel(ctx, s.RDB, s.Keys(p.q), held[0].ID)
		require.NoError(t, err)
		require.Equal(t, CancelSignalled, a)
		r := p.poll(0, success(held[0]), success(held[1]))
		assert.True(t, p.lean.Full())
		assert.Equal(t, []bool{true, false}, r.Cancelled, "the cancel stands over the success")
		assert.Equal(t, []bool{true, true}, r.Recorded)
		n, err := s.RDB.HLen(ctx, s.Key(p.q, keys.Cancels)).Result()
		require.NoError(t, err)
		assert.LessOrEqual(t, n, int64(1), "the cancel entry goes with its message (but the walk's cursor)")
		finish(t, p, 4)
	})

	t.Run("progress", func(t *testing.T) {
		p, held := start(t)
		_, err := Renew(ctx, s.RDB, s.Keys(p.q), []Renewal{{ID: held[0].ID, LockedUntil: held[0].LockedUntil,
			LockTime: time.Minute, Progress: EncodeProgress(0.5, "half")}})
		require.NoError(t, err)
		// (the renewal's alias proves the old token)
		r := p.poll(0, success(held[0]), success(held[1]))
		assert.True(t, p.lean.Full())
		assert.Equal(t, []bool{true, true}, r.Recorded)
		n, err := s.RDB.HLen(ctx, s.Key(p.q, keys.Progress)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "the progress goes with its message")
		finish(t, p, 4)
	})

	t.Run("result", func(t *testing.T) {
		p, held := start(t)
		c := success(held[0])
		c.Result = []byte("forty-two")
		r := p.poll(0, c, success(held[1]))
		assert.True(t, p.lean.Full(), "a result needs every key")
		assert.Equal(t, []bool{true, true}, r.Recorded)
		rec, err := ReadResult(ctx, s.RDB, s.Keys(p.q), held[0].ID)
		require.NoError(t, err)
		assert.Equal(t, "forty-two", string(rec.Data))
		finish(t, p, 4)
	})

	t.Run("result of another client", func(t *testing.T) {
		p, held := start(t)
		other := &leanPoller{t: t, s: s, q: p.q, lean: new(Lean), id: randomToken()}
		c := success(held[0])
		c.Result = []byte("theirs")
		other.poll(0, c)
		assert.False(t, p.lean.Full())
		r := p.poll(0, success(held[1]))
		assert.True(t, p.lean.Full(), "a queue that uses results is polled with every key")
		assert.Equal(t, []bool{true}, r.Recorded)
		finish(t, p, 4)
	})
}

// TestLeanPollRefusesBeforeWriting: a lean call (§4) on a queue that uses
// an extension with keys of its own, or with an outcome that carries a
// result or follow-ups, answers NeedKeys and writes nothing: the same
// call sent again with every key is its only application.
func TestLeanPollRefusesBeforeWriting(t *testing.T) {
	ctx := context.Background()
	s := queuetest.RealServer(t)
	q := queuetest.QueueName(t)
	for i := range 3 {
		mustEnqueue(t, s, q, i, &EnqueueMessage{ID: "m" + strconv.Itoa(i)})
	}
	r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, MaxSteps: 2})
	require.NoError(t, err)
	require.Len(t, r.Steps, 2)
	now := s.Now(t)
	dump := func() map[string]string {
		return queuetest.Dump(t, s.RDB, func(i keys.Index) string { return s.Key(q, i) }, now)
	}
	leanWith := func(nkeys int, cs ...Completion) error {
		a := PollArgs{LockTime: time.Minute, MaxSteps: 2, Completions: cs, Poller: randomToken(), Seq: 1}
		return dequeueLeanScript.Run(ctx, s.RDB, s.Keys(q)[:nkeys], a.argv(nil, 0)...).Err()
	}
	lean := func(cs ...Completion) error { return leanWith(LeanKeys, cs...) }
	done := Completion{ID: r.Steps[0].ID, LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}

	before := dump()
	withResult := done
	withResult.Result = []byte("r")
	assert.Equal(t, NeedKeys, ErrorCode(lean(withResult)), "a result")
	withFollowUps := done
	withFollowUps.FollowUps = []byte("f")
	assert.Equal(t, NeedKeys, ErrorCode(lean(withFollowUps)), "follow-ups")
	// (Poll sends follow-ups to enqueue in the script to the lean
	// composition that has their code, dequeue-lean-followups; the plain
	// one, without it, refuses them rather than drop them.)
	inScript := done
	inScript.FollowUps = EncodeInScript([]InScriptFollowUp{{ID: "m0/x", Data: []byte("f")}}, nil)
	assert.Equal(t, NeedKeys, ErrorCode(lean(inScript)), "follow-ups to enqueue in the script, to the plain lean composition")
	assert.Equal(t, before, dump(), "a refused call wrote nothing")
	// The lean composition with their code refuses a record for the relay
	// (in_script.check answers a record of another kind whole), beside
	// one to enqueue in the script or alone.
	leanFollowUps := func(cs ...Completion) error {
		a := PollArgs{LockTime: time.Minute, MaxSteps: 2, Completions: cs, Poller: randomToken(), Seq: 1}
		return dequeueLeanFollowUpsScript.Run(ctx, s.RDB, s.Keys(q)[:LeanKeys], a.argv(nil, 0)...).Err()
	}
	relayToo := Completion{ID: r.Steps[1].ID, LockedUntil: r.Steps[1].LockedUntil, Outcome: OutcomeSuccess, FollowUps: []byte("f")}
	assert.Equal(t, NeedKeys, ErrorCode(leanFollowUps(inScript, relayToo)), "follow-ups for the relay beside, to dequeue-lean-followups")
	assert.Equal(t, NeedKeys, ErrorCode(leanFollowUps(withFollowUps)), "follow-ups for the relay, to dequeue-lean-followups")
	assert.Equal(t, before, dump(), "a refused call wrote nothing")

	withLimits := func(cs ...Completion) error {
		a := PollArgs{LockTime: time.Minute, MaxSteps: 2, Completions: cs, Poller: randomToken(), Seq: 1}
		return dequeueLimitsScript.Run(ctx, s.RDB, s.Keys(q), a.argv(nil, 0)...).Err()
	}
	assert.Equal(t, NeedKeys, ErrorCode(withLimits(withResult)), "a result, to dequeue-limits")
	assert.Equal(t, NeedKeys, ErrorCode(withLimits(withFollowUps)), "follow-ups, to dequeue-limits")
	assert.Equal(t, NeedKeys, ErrorCode(withLimits(inScript)), "follow-ups to enqueue in the script, to dequeue-limits")
	assert.Equal(t, before, dump(), "a refused call wrote nothing")

	for _, f := range []string{"results", "handoffs", "batches", "cancel", "progress", "limits"} {
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Features), f, "1").Err())
		before := dump()
		want := NeedKeys
		if f == "limits" {
			want = NeedLimits // (to dequeue-limits, with every key)
		}
		assert.Equal(t, want, ErrorCode(lean(done)), f)
		assert.Equal(t, want, ErrorCode(leanWith(keys.Count, done)), "%s, every key but the lean script", f)
		if f != "limits" {
			assert.Equal(t, NeedKeys, ErrorCode(withLimits(done)), "%s, to dequeue-limits", f)
			require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Features), "limits", "1").Err())
			assert.Equal(t, NeedKeys, ErrorCode(lean(done)), "%s and limits", f)
			assert.Equal(t, NeedKeys, ErrorCode(withLimits(done)), "%s and limits, to dequeue-limits", f)
			require.NoError(t, s.RDB.HDel(ctx, s.Key(q, keys.Features), "limits").Err())
		}
		assert.Equal(t, before, dump(), "a call refused for %s wrote nothing", f)
		require.NoError(t, s.RDB.HDel(ctx, s.Key(q, keys.Features), f).Err())
	}
	require.NoError(t, lean(done), "a queue without them is polled lean")
}

// TestLeanPollInScriptFollowUps: follow-ups the script enqueues itself
// (§22) need none of the extension keys, so a call carrying them stays
// lean, and enqueues them (to its own queue and to another); one that
// also carries follow-ups for the relay passes every key.
func TestLeanPollInScriptFollowUps(t *testing.T) {
	ctx := context.Background()
	s := queuetest.RealServer(t)
	q, next := queuetest.QueueName(t), queuetest.QueueName(t)+"-next"
	for i := range 3 {
		mustEnqueue(t, s, q, i, &EnqueueMessage{ID: "m" + strconv.Itoa(i)})
	}
	lean := new(Lean)
	a := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 3, Poller: randomToken(), Seq: 1, Lean: lean}
	r, err := Poll(ctx, s.RDB, s.Keys(q), a)
	require.NoError(t, err)
	out := handedOut(r)
	require.Len(t, out, 3)

	in := EncodeInScript([]InScriptFollowUp{
		{Target: s.Key(next, keys.Messages), ID: "m0/a", Data: []byte("to next")},
		{ID: "m0/b", Data: []byte("to own")},
	}, nil)
	a.Seq, a.Confirmed, a.MaxSteps = 2, 1, 0
	a.Completions = []Completion{{ID: "m0", LockedUntil: out["m0"].LockedUntil, Outcome: OutcomeSuccess, FollowUps: in}}
	r, err = Poll(ctx, s.RDB, s.Keys(q), a)
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, r.Recorded)
	assert.False(t, lean.Full(), "follow-ups enqueued in the script keep the call lean")
	assert.Equal(t, "to next", s.RDB.HGet(ctx, s.Key(next, keys.Messages), "m0/a").Val())
	assert.Equal(t, "to own", s.RDB.HGet(ctx, s.Key(q, keys.Messages), "m0/b").Val())
	assert.Zero(t, s.RDB.Exists(ctx, s.Key(q, keys.Handoffs)).Val(), "nothing for the relay")

	// Follow-ups to its own queue alone pass no keys of another queue:
	// still the lean composition with their code.
	a.Seq, a.Confirmed = 3, 2
	a.Completions = []Completion{{ID: "m2", LockedUntil: out["m2"].LockedUntil, Outcome: OutcomeSuccess,
		FollowUps: EncodeInScript([]InScriptFollowUp{{ID: "m2/a", Data: []byte("own only")}}, nil)}}
	r, err = Poll(ctx, s.RDB, s.Keys(q), a)
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, r.Recorded)
	assert.False(t, lean.Full(), "follow-ups to its own queue keep the call lean")
	assert.Equal(t, "own only", s.RDB.HGet(ctx, s.Key(q, keys.Messages), "m2/a").Val())

	relay, err := EncodeFollowUps([]FollowUp{{Queue: "far", Msg: EnqueueMessage{ID: "m1/x/0", Data: []byte("f")}}})
	require.NoError(t, err)
	a.Seq, a.Confirmed = 4, 3
	a.Completions = []Completion{{ID: "m1", LockedUntil: out["m1"].LockedUntil, Outcome: OutcomeSuccess,
		FollowUps: EncodeInScript([]InScriptFollowUp{{ID: "m1/y", Data: []byte("own")}}, relay)}}
	r, err = Poll(ctx, s.RDB, s.Keys(q), a)
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, r.Recorded)
	assert.True(t, lean.Full(), "follow-ups for the relay need every key")
	assert.Equal(t, "own", s.RDB.HGet(ctx, s.Key(q, keys.Messages), "m1/y").Val())
	assert.Equal(t, int64(1), s.RDB.LLen(ctx, s.Key(q, keys.Handoffs)).Val(), "the relay's record")
}

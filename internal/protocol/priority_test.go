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

// The tests of docs/protocol.md §18: priorities within a queue, on a real
// Redis.

// prioIDs lists the ids and priorities of the handle steps of r.
func prioIDs(r PollReply) []string {
	var out []string
	for _, s := range r.Steps {
		if s.Kind == StepHandle {
			out = append(out, s.ID+":"+s.Priority)
		}
	}
	return out
}

// TestPriorityOrder: a poll hands out high messages before normal ones
// and normal ones before low ones, in enqueue order within a level, and
// each step says the message's priority.
func TestPriorityOrder(t *testing.T) {
	s := fleetServer(t)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	for _, m := range []EnqueueMessage{{ID: "l1", Priority: PriorityLow}, {ID: "n1"}, {ID: "h1", Priority: PriorityHigh},
		{ID: "l2", Priority: PriorityLow}, {ID: "n2"}, {ID: "h2", Priority: PriorityHigh}} {
		mustEnqueue(t, s, q, m.ID, &m)
	}
	assert.Equal(t, "1", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "priority"))
	r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 6})
	require.NoError(t, err)
	assert.Equal(t, []string{"h1:h", "h2:h", "n1:", "n2:", "l1:l", "l2:l"}, prioIDs(r))
}

// TestPriorityBacklog: under a backlog of 100,000 low messages (and
// then 10,000 normal ones), a high message enqueued last is the first
// hand-out of the next poll.
func TestPriorityBacklog(t *testing.T) {
	s := fleetServer(t)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	fill := func(prefix, prio string, n int) {
		const batch = 2000
		for i := 0; i < n; i += batch {
			msgs := make([]EnqueueMessage, batch)
			for j := range msgs {
				msgs[j] = EnqueueMessage{ID: fmt.Sprintf("%s%d", prefix, i+j), Data: []byte("x"), Priority: prio}
			}
			a := Enqueue(ctx, s.RDB, s.Keys(q), EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, Messages: msgs})
			require.NoError(t, a.Err)
		}
	}
	args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1}
	fill("low", PriorityLow, 100_000)
	require.EqualValues(t, 100_000, s.RDB.LLen(ctx, s.Key(q, keys.PrioLo)).Val())
	mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "high1", Priority: PriorityHigh})
	r, err := poll(ctx, s, q, args)
	require.NoError(t, err)
	assert.Equal(t, []string{"high1:h"}, prioIDs(r), "the high message first, over 100,000 low")

	fill("normal", "", 10_000)
	mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "high2", Priority: PriorityHigh})
	r, err = poll(ctx, s, q, args)
	require.NoError(t, err)
	assert.Equal(t, []string{"high2:h"}, prioIDs(r), "the high message first, over normal and low ones")
	r, err = poll(ctx, s, q, args)
	require.NoError(t, err)
	assert.Equal(t, []string{"normal0:"}, prioIDs(r), "then the normal ones, before the low")
}

// TestPriorityKeptByRetryAndRelease: a message retried (at once, or
// after its backoff) or released goes back to its priority's list, and
// a requeue pending on it keeps it.
func TestPriorityKeptByRetryAndRelease(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	f.mustEnqueue(EnqueueMessage{ID: "n1", Data: []byte("n")})
	f.mustEnqueue(EnqueueMessage{ID: "h", Data: []byte("h"), Priority: PriorityHigh})
	f.mustEnqueue(EnqueueMessage{ID: "l", Data: []byte("l"), Priority: PriorityLow})
	take := func() Step {
		t.Helper()
		r := f.mustPoll(PollArgs{MaxSteps: 1})
		require.Len(t, r.Steps, 1)
		require.Equal(t, StepHandle, r.Steps[0].Kind, "%+v", r.Steps[0])
		return r.Steps[0]
	}
	h := take()
	require.Equal(t, "h", h.ID)
	f.complete(Completion{ID: "h", LockedUntil: h.LockedUntil, Outcome: OutcomeRetry})
	h = take()
	require.Equal(t, "h", h.ID, "retried at once: before the normal one")
	f.complete(Completion{ID: "h", LockedUntil: h.LockedUntil, Outcome: OutcomeRelease})
	h = take()
	require.Equal(t, "h", h.ID, "released: before the normal one")
	f.complete(Completion{ID: "h", LockedUntil: h.LockedUntil, Outcome: OutcomeRetry, Backoff: time.Second})
	f.mustEnqueue(EnqueueMessage{ID: "n2", Data: []byte("n")})
	f.advance(2 * time.Second)
	h = take()
	require.Equal(t, "h", h.ID, "woken from its backoff: before the normal ones")
	assert.Equal(t, PriorityHigh, h.Priority)

	// A requeue pending on the high message becomes a high message.
	f.mustEnqueue(EnqueueMessage{ID: "h", Data: []byte("h2"), CanRequeue: true, Priority: PriorityHigh})
	f.complete(Completion{ID: "h", LockedUntil: h.LockedUntil, Outcome: OutcomeSuccess})
	h = take()
	require.Equal(t, "h", h.ID, "the requeue: before the normal ones")
	assert.Equal(t, "h2", string(h.Data))
	assert.Equal(t, PriorityHigh, h.Priority)
	f.complete(Completion{ID: "h", LockedUntil: h.LockedUntil, Outcome: OutcomeSuccess})

	// The low one stays after the normal ones through its retry.
	assert.Equal(t, "n1", take().ID)
	assert.Equal(t, "n2", take().ID)
	l := take()
	require.Equal(t, "l", l.ID)
	f.mustEnqueue(EnqueueMessage{ID: "n3", Data: []byte("n")})
	f.complete(Completion{ID: "l", LockedUntil: l.LockedUntil, Outcome: OutcomeRelease})
	assert.Equal(t, "n3", take().ID, "a released low message stays behind the normal ones")
	l = take()
	require.Equal(t, "l", l.ID)
	f.complete(Completion{ID: "l", LockedUntil: l.LockedUntil, Outcome: OutcomeRetry, Backoff: time.Second})
	f.mustEnqueue(EnqueueMessage{ID: "n4", Data: []byte("n")})
	f.advance(2 * time.Second)
	assert.Equal(t, "n4", take().ID, "a low message woken from its backoff stays behind the normal ones")
	assert.Equal(t, "l", take().ID)
}

// TestPriorityCarmineAlone: a Carmine worker alone on the queue handles
// every message, whatever its priority (it ignores priorities), and this
// library's next lap then drops their ids from prio-hi and prio-lo.
func TestPriorityCarmineAlone(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	want := map[string]int{}
	for i, p := range []string{PriorityHigh, "", PriorityLow, PriorityLow, "", PriorityHigh} {
		id := fmt.Sprintf("m%d", i)
		f.mustEnqueue(EnqueueMessage{ID: id, Data: []byte("x"), Priority: p})
		want[id] = 1
	}
	handled := map[string]int{}
	for id := f.carmineHandle(60000); id != ""; id = f.carmineHandle(60000) {
		handled[id]++
		f.carmineOutcome(id, true, 0)
	}
	assert.Equal(t, want, handled)
	assert.Empty(t, f.lap(), "nothing handed out again")
	for _, k := range []keys.Index{keys.PrioHi, keys.PrioLo} {
		assert.Zero(t, f.rdb.Exists(f.ctx, s.Key(f.q, k)).Val(), keys.Suffixes[k])
	}
	assert.Equal(t, Counts{}, f.counts())
}

// TestPriorityCarmineLap: high and low messages stand on mid-circle too,
// so a Carmine worker's lap finds them; a message this library handed
// out from prio-hi or prio-lo is not handed out again when the lap meets
// it locked or done, nor one a Carmine worker took when this library's
// poll meets it on its list. Every message is handled exactly once.
func TestPriorityCarmineLap(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	prios := []string{PriorityHigh, "", PriorityLow}
	const n = 60
	for i := range n {
		f.mustEnqueue(EnqueueMessage{ID: fmt.Sprintf("m%d", i), Data: []byte("x"), Priority: prios[i%3]})
	}
	handled := map[string]int{}
	var ours []Step
	for round := 0; round < 10*n; round++ {
		if round%2 == 0 {
			r := f.mustPoll(PollArgs{MaxSteps: 2, MaxHandles: 1})
			for _, st := range r.Steps {
				if st.Kind == StepHandle {
					handled[st.ID]++
					ours = append(ours, st)
				}
			}
		} else if id := f.carmineHandle(60000); id != "" {
			handled[id]++
			f.carmineOutcome(id, true, 0)
		}
		// Ours are completed two rounds late, so that laps meet them
		// locked.
		if len(ours) > 2 {
			st := ours[0]
			ours = ours[1:]
			assert.Equal(t, []bool{true}, f.complete(Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}))
		}
		if len(handled) == n {
			break
		}
	}
	for _, st := range ours {
		f.complete(Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess})
	}
	require.Len(t, handled, n, "every message handled")
	for id, k := range handled {
		assert.Equal(t, 1, k, "%s handled once", id)
	}
	// Both laps leave the queue empty, and the lists with nothing but
	// ids they drop.
	f.lap()
	f.carmineHandle(60000)
	f.lap()
	assert.Equal(t, Counts{}, f.counts())
	assert.Empty(t, f.view().stranded)
	for _, k := range []keys.Index{keys.PrioHi, keys.PrioLo, keys.Prio} {
		assert.Zero(t, f.rdb.Exists(f.ctx, s.Key(f.q, k)).Val(), keys.Suffixes[k])
	}
}

// TestPriorityDeleteAndClear: deleting a message removes its priority at
// once (its id stays on its list until a poll drops it), and Clear
// removes every key of §18.
func TestPriorityDeleteAndClear(t *testing.T) {
	s := fleetServer(t)
	ctx := context.Background()
	q := queuetest.QueueName(t)
	mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, Priority: PriorityHigh})
	mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "other", Priority: PriorityLow})
	require.True(t, deleteOne(t, s, q))
	assert.Zero(t, s.RDB.HExists(ctx, s.Key(q, keys.Prio), mid).Val())
	r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"other:l"}, prioIDs(r), "the deleted one dropped")
	assert.Equal(t, Step{Kind: StepSkip, Reason: "did-trim"}, r.Steps[0])
	_, err = Clear(ctx, s.RDB, false, []string{q})
	require.NoError(t, err)
	for _, k := range []keys.Index{keys.PrioHi, keys.PrioLo, keys.Prio, keys.Features} {
		assert.Zero(t, s.RDB.Exists(ctx, s.Key(q, k)).Val(), keys.Suffixes[k])
	}
}

// TestPriorityCarmineHolds: a high message a Carmine worker holds, met
// by this library's poll on prio-hi, is dropped from the list, not handed
// out and not pushed onto mid-circle a second time; once the Carmine
// worker is done with it, this library's laps collect it.
func TestPriorityCarmineHolds(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	f.mustEnqueue(EnqueueMessage{ID: "h", Data: []byte("x"), Priority: PriorityHigh})
	require.Equal(t, "h", f.carmineHandle(60000))
	r := f.mustPoll(PollArgs{MaxSteps: 1})
	assert.Equal(t, []Step{{Kind: StepSkip, Reason: "locked"}}, r.Steps)
	ids, err := f.rdb.LRange(f.ctx, s.Key(f.q, keys.MidCircle), 0, -1).Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"h", "end-of-circle"}, ids, "once on the circle")
	f.carmineOutcome("h", true, 0)
	assert.Empty(t, append(f.lap(), f.lap()...), "done: not handed out")
	assert.Equal(t, Counts{}, f.counts(), "collected by the laps")
}

// TestPriorityKeptByExpiredLock: a message whose handler's process died
// (its lock ran out) comes back at its priority: a high one before the
// normal messages queued meanwhile, a low one after them.
func TestPriorityKeptByExpiredLock(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	f.mustEnqueue(EnqueueMessage{ID: "h", Data: []byte("x"), Priority: PriorityHigh})
	f.mustEnqueue(EnqueueMessage{ID: "l", Data: []byte("x"), Priority: PriorityLow})
	args := PollArgs{MaxSteps: 2, LockTime: time.Second}
	require.Equal(t, []string{"h:h", "l:l"}, prioIDs(f.mustPoll(args)))
	for _, id := range []string{"n1", "n2"} {
		f.mustEnqueue(EnqueueMessage{ID: id, Data: []byte("x")})
	}
	f.advance(2 * time.Second) // the handler's process died
	args.MaxSteps = 4
	r := f.mustPoll(args)
	assert.Equal(t, []string{"h:h", "n1:", "n2:", "l:l"}, prioIDs(r), "each back at its priority")
	assert.Equal(t, int64(2), r.Steps[0].Attempt)
	assert.Empty(t, f.view().stranded)
}

// TestPriorityStepTag: a hand-out's step tells the priority its prio
// entry gives when the entry's tag is the message's first-enqueue time,
// written as udts holds it or as another spelling of the same number,
// and none for an entry of an earlier message of the id (stale), though
// the id was taken from prio-hi.
func TestPriorityStepTag(t *testing.T) {
	for _, c := range []struct {
		name, entry, want string
	}{
		{"as written", "%d:l", PriorityLow},
		{"another spelling", "0%d:l", PriorityLow},
		{"stale", "%d1:l", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := fleetServer(t)
			q := queuetest.QueueName(t)
			ctx := context.Background()
			mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "m", Priority: PriorityHigh})
			udt := queuetest.HGetInt(t, s.RDB, s.Key(q, keys.UDTs), "m")
			require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Prio), "m", fmt.Sprintf(c.entry, udt)).Err())
			r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
			require.NoError(t, err)
			assert.Equal(t, []string{"m:" + c.want}, prioIDs(r))
		})
	}
}

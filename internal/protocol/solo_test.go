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

// The tests of docs/protocol.md §11, Quarantine: suspects are handed out
// alone, and only losses alone bury a message soon.

// soloQueue is a queue under test by polls that say how many messages
// their worker holds.
type soloQueue struct {
	t    *testing.T
	s    *queuetest.Server
	q    string
	args PollArgs
}

func newSoloQueue(t *testing.T, s *queuetest.Server, bound int) *soloQueue {
	return &soloQueue{t: t, s: s, q: queuetest.QueueName(t),
		args: PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 20, QuarantineAfter: bound}}
}

// poll takes up to handles messages for a worker holding held.
func (sq *soloQueue) poll(held, handles int) PollReply {
	sq.t.Helper()
	a := sq.args
	a.Held, a.MaxHandles = held, handles
	r, err := poll(context.Background(), sq.s, sq.q, a)
	require.NoError(sq.t, err)
	return r
}

// handed answers the messages a reply handed out.
func handed(r PollReply) []Step {
	var out []Step
	for _, st := range r.Steps {
		if st.Kind == StepHandle {
			out = append(out, st)
		}
	}
	return out
}

func skips(r PollReply, reason string) int {
	n := 0
	for _, st := range r.Steps {
		if st.Kind == StepSkip && st.Reason == reason {
			n++
		}
	}
	return n
}

// die lets the locks of the steps run out, as when their process died.
func (sq *soloQueue) die(steps ...Step) {
	sq.t.Helper()
	ctx := context.Background()
	for _, st := range steps {
		now := sq.s.Now(sq.t)
		require.NoError(sq.t, sq.s.RDB.HSet(ctx, sq.s.Key(sq.q, keys.Locks), st.ID, now-1).Err())
		require.NoError(sq.t, sq.s.RDB.ZAdd(ctx, sq.s.Key(sq.q, keys.Due), redis.Z{Score: float64(now - 1), Member: st.ID}).Err())
	}
}

func (sq *soloQueue) succeed(st Step) {
	sq.t.Helper()
	ok, err := complete(context.Background(), sq.s, sq.q, []Completion{{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(sq.t, err)
	require.Equal(sq.t, []bool{true}, ok)
}

func (sq *soloQueue) nsolo(id string) string {
	sq.t.Helper()
	v, err := sq.s.RDB.HGet(context.Background(), sq.s.Key(sq.q, keys.NSolo), id).Result()
	if err != nil {
		return ""
	}
	return v
}

func (sq *soloQueue) dead(id string) (DeadRecord, bool) {
	sq.t.Helper()
	d, ok, err := DeadLetter(context.Background(), sq.s.RDB, sq.s.Keys(sq.q), id)
	require.NoError(sq.t, err)
	return d, ok
}

// TestSoloNoInnocentVictims: four messages die together in one process,
// one of them poison. A busy worker's poll sets the four suspects aside,
// first in line; a poll of a worker holding nothing takes one alone and
// ends there. The innocents, handled alone, succeed; the poison, dying
// alone, is buried after five deaths in all (one in the crowd, four
// alone); no innocent is ever buried.
func TestSoloNoInnocentVictims(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		sq := newSoloQueue(t, s, 5)
		for _, id := range []string{"poison", "a", "b", "c"} {
			mustEnqueue(t, s, sq.q, id, &EnqueueMessage{ID: id})
		}
		first := handed(sq.poll(0, 4))
		require.Len(t, first, 4, "none is a suspect yet: handed out together")
		for _, st := range first {
			assert.False(t, st.Solo)
		}
		sq.die(first...)

		r := sq.poll(2, 4)
		assert.Empty(t, handed(r), "a busy worker takes no suspect")
		assert.Equal(t, 4, skips(r, "suspect"))
		assert.ElementsMatch(t, []string{"poison", "a", "b", "c"}, list(t, s, sq.q, keys.MidsReady), "set aside, ready")
		for _, id := range []string{"poison", "a", "b", "c"} {
			n, err := s.RDB.HGet(context.Background(), s.Key(sq.q, keys.NAttempts), id).Int()
			require.NoError(t, err)
			assert.Equal(t, 1, n, "%s: a suspect set aside is not counted as handed out", id)
		}

		deaths, buried := 1, 0
		for range 20 {
			r := sq.poll(0, 4)
			buried += skips(r, "quarantined")
			got := handed(r)
			if len(got) == 0 {
				break
			}
			require.Len(t, got, 1, "a suspect goes out alone")
			st := got[0]
			require.True(t, st.Solo)
			require.Equal(t, st, r.Steps[len(r.Steps)-1], "and ends the call")
			if st.ID != "poison" {
				sq.succeed(st)
				assert.Equal(t, "", sq.nsolo(st.ID), "collection clears nsolo")
				continue
			}
			deaths++
			require.LessOrEqual(t, deaths, 5, "buried within five deaths")
			sq.die(st)
		}
		assert.Equal(t, 5, deaths)
		assert.Equal(t, 1, buried)
		d, ok := sq.dead("poison")
		require.True(t, ok)
		assert.Equal(t, "quarantined", d.Reason)
		assert.Contains(t, d.Error, "4 alone")
		assert.Equal(t, "", sq.nsolo("poison"), "burial clears nsolo")
		for _, id := range []string{"a", "b", "c"} {
			_, ok := sq.dead(id)
			assert.False(t, ok, "%s is no dead letter", id)
			assert.Equal(t, StatusNone, statusOf(t, s, sq.q, id), "%s handled", id)
		}
	})
}

// TestSoloCrowdedLosses: a message lost again and again in crowds only (a
// poll that does not say what its worker holds hands suspects out with
// others) is buried only at four times the bound; after a loss alone, at
// the bound.
func TestSoloCrowdedLosses(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		sq := newSoloQueue(t, s, 2)
		mustEnqueue(t, s, sq.q, "x", &EnqueueMessage{ID: mid})
		for i := range 8 {
			r := sq.poll(NotTold, 4)
			got := handed(r)
			require.Len(t, got, 1, "crowded loss %d", i+1)
			assert.False(t, got[0].Solo)
			sq.die(got...)
		}
		r := sq.poll(NotTold, 4)
		assert.Equal(t, 1, skips(r, "quarantined"), "buried at 4 x 2 losses in crowds")

		sq.q += ":alone"
		mustEnqueue(t, s, sq.q, "x", &EnqueueMessage{ID: mid})
		sq.die(handed(sq.poll(NotTold, 4))...) // lost in a crowd
		got := handed(sq.poll(0, 4))
		require.Len(t, got, 1)
		require.True(t, got[0].Solo)
		sq.die(got...) // lost alone
		r = sq.poll(0, 4)
		assert.Equal(t, 1, skips(r, "quarantined"), "buried at 2 losses, one alone")
	})
}

// TestSoloSetAsideThenCrowd: a poll of a worker holding nothing that
// handed out a message already sets a suspect aside too; a release of a
// suspect handed out alone does not count as its loss; DeleteMessage
// clears nsolo.
func TestSoloSetAsideThenCrowd(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		sq := newSoloQueue(t, s, 5)
		mustEnqueue(t, s, sq.q, "x", &EnqueueMessage{ID: mid})
		sq.die(handed(sq.poll(0, 4))...)
		mustEnqueue(t, s, sq.q, "fresh", &EnqueueMessage{ID: "fresh"})
		// The woken suspect is first in line; put the fresh one before it.
		require.NoError(t, s.RDB.Del(ctx, s.Key(sq.q, keys.MidsReady)).Err())
		require.NoError(t, s.RDB.ZRem(ctx, s.Key(sq.q, keys.Due), mid).Err())
		require.NoError(t, s.RDB.HDel(ctx, s.Key(sq.q, keys.Locks), mid).Err())
		require.NoError(t, s.RDB.RPush(ctx, s.Key(sq.q, keys.MidsReady), mid, "fresh").Err())
		r := sq.poll(0, 4)
		got := handed(r)
		require.Len(t, got, 1)
		assert.Equal(t, "fresh", got[0].ID)
		assert.Equal(t, 1, skips(r, "suspect"))
		assert.Equal(t, []string{mid}, list(t, s, sq.q, keys.MidsReady))

		got = handed(sq.poll(0, 4))
		require.Len(t, got, 1)
		require.True(t, got[0].Solo)
		ok, err := complete(ctx, s, sq.q, []Completion{{ID: mid, LockedUntil: got[0].LockedUntil, Outcome: OutcomeRelease}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		got = handed(sq.poll(0, 4))
		require.Len(t, got, 1)
		sq.die(got...)
		got = handed(sq.poll(0, 4))
		require.Len(t, got, 1)
		assert.Regexp(t, `^1 `, sq.nsolo(mid), "one loss alone: the released hand-out is not one")

		_, err = Delete(ctx, s.RDB, s.Keys(sq.q), []string{mid})
		require.NoError(t, err)
		assert.Equal(t, "", sq.nsolo(mid), "delete clears nsolo")
	})
}

// TestSoloOffWithoutQuarantine: a worker that never quarantines (bound 0)
// gets suspects as any message, with others, even while it holds some.
func TestSoloOffWithoutQuarantine(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		sq := newSoloQueue(t, s, 0)
		for _, id := range []string{"a", "b"} {
			mustEnqueue(t, s, sq.q, id, &EnqueueMessage{ID: id})
		}
		sq.die(handed(sq.poll(0, 4))...)
		r := sq.poll(3, 4)
		got := handed(r)
		assert.Len(t, got, 2, "both lost, both handed out together")
		assert.Zero(t, skips(r, "suspect"))
		for _, st := range got {
			assert.False(t, st.Solo)
		}
	})
}

// TestSoloAsideBounded: a suspect set aside for its lock time (no worker
// holding nothing came for it) goes to the next call, busy or not: a
// queue whose every worker is busy, or stuck, still hands it out. It goes
// as that call's last hand-out, step solo (the worker then takes nothing
// more until it is done with it), and its loss there counts as alone.
func TestSoloAsideBounded(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		sq := newSoloQueue(t, s, 5)
		mustEnqueue(t, s, sq.q, "x", &EnqueueMessage{ID: mid})
		sq.die(handed(sq.poll(0, 4))...)
		r := sq.poll(1, 4)
		require.Equal(t, 1, skips(r, "suspect"))
		var lost, at, outcomes, aside int64
		_, err := fmt.Sscanf(sq.nsolo(mid), "%d %d %d %d", &lost, &at, &outcomes, &aside)
		require.NoError(t, err)
		assert.InDelta(t, s.Now(t), aside, float64(time.Minute.Milliseconds()), "when it was first set aside")
		r = sq.poll(1, 4)
		require.Equal(t, 1, skips(r, "suspect"), "still within its lock time")
		_, err = fmt.Sscanf(sq.nsolo(mid), "%d %d %d %d", &lost, &at, &outcomes, &aside)
		require.NoError(t, err)
		assert.InDelta(t, s.Now(t), aside, float64(time.Minute.Milliseconds()), "the first set-aside kept")

		// A fresh message before it in line: the busy call takes that,
		// then the suspect, and ends there.
		mustEnqueue(t, s, sq.q, "fresh", &EnqueueMessage{ID: "fresh"})
		require.NoError(t, s.RDB.Del(ctx, s.Key(sq.q, keys.MidsReady)).Err())
		require.NoError(t, s.RDB.RPush(ctx, s.Key(sq.q, keys.MidsReady), mid, "fresh").Err())
		long := fmt.Sprintf("%d 0 0 %d", lost, s.Now(t)-time.Minute.Milliseconds()-1)
		require.NoError(t, s.RDB.HSet(ctx, s.Key(sq.q, keys.NSolo), mid, long).Err())
		r = sq.poll(1, 4)
		got := handed(r)
		require.Len(t, got, 2, "set aside for a lock time: handed to a busy worker")
		assert.Equal(t, "fresh", got[0].ID)
		assert.False(t, got[0].Solo)
		assert.Equal(t, mid, got[1].ID)
		assert.True(t, got[1].Solo, "the worker takes nothing more while it holds it")
		require.Equal(t, got[1], r.Steps[len(r.Steps)-1], "and ends the call")
		assert.Equal(t, "0 2 0 0", sq.nsolo(mid), "taken as a hand-out alone")
	})
}

// TestSoloAsideTimedOutPoison: a poison message lost in a crowd, then
// alone three times, then set aside for its lock time and handed to a
// busy worker, where it kills the process once more: that loss is its
// fifth charge, and it is buried before a sixth death (issue 19: at most
// five deaths however it was handed out). Before, such a hand-out went
// out in a crowd, uncharged, and the message died six times.
func TestSoloAsideTimedOutPoison(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		sq := newSoloQueue(t, s, 5)
		mustEnqueue(t, s, sq.q, "poison", &EnqueueMessage{ID: "poison"})
		deaths := 0
		kill := func(got []Step) {
			t.Helper()
			require.Len(t, got, 1)
			require.Equal(t, "poison", got[0].ID)
			deaths++
			sq.die(got...)
		}
		kill(handed(sq.poll(0, 4))) // in a crowd: the first charge
		for range 3 {
			got := handed(sq.poll(0, 4))
			require.True(t, got[0].Solo)
			kill(got)
		}
		// Busy workers only, for a lock time.
		r := sq.poll(2, 4)
		require.Equal(t, 1, skips(r, "suspect"))
		var lost, at, outcomes, aside int64
		_, err := fmt.Sscanf(sq.nsolo("poison"), "%d %d %d %d", &lost, &at, &outcomes, &aside)
		require.NoError(t, err)
		require.EqualValues(t, 3, lost)
		long := fmt.Sprintf("%d 0 0 %d", lost, s.Now(t)-time.Minute.Milliseconds()-1)
		require.NoError(t, s.RDB.HSet(ctx, s.Key(sq.q, keys.NSolo), "poison", long).Err())
		kill(handed(sq.poll(2, 4))) // to a busy worker: the fifth death

		for range 3 {
			r = sq.poll(0, 4)
			if skips(r, "quarantined") == 1 {
				break
			}
			kill(handed(r))
		}
		assert.Equal(t, 5, deaths, "deaths before the burial")
		d, ok := sq.dead("poison")
		require.True(t, ok, "buried")
		assert.Equal(t, "quarantined", d.Reason)
		assert.Contains(t, d.Error, "handed out 5 times")
	})
}

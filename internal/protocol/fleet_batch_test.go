package protocol

import (
	"time"

	"testing"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/require"
)

// TestFleetCarmineBatchMemberTicks (docs/protocol.md §22): a batch member a
// Carmine worker finished ticks its batch when this library's poll
// collects it, with a dedupe window of Carmine's once the window ended; a
// member this library's worker finished ticks once, at its outcome, and
// not again when its window ends and the poll collects it.
func TestFleetCarmineBatchMemberTicks(t *testing.T) {
	s := fleetServer(t)
	q := queuetest.QueueName(t)
	cq := q + "-done"
	f := newFleet(t, s, q)
	require.NoError(t, BatchCreate(f.ctx, f.rdb, s.Keys(cq), "b1", 3,
		FollowUp{Queue: cq, Msg: EnqueueMessage{ID: "done"}}, [][]string{f.keys}))
	ref := BatchRef("b1", cq)
	ticks := func() []MemberTick {
		t.Helper()
		var out []MemberTick
		for _, raw := range queuetest.List(t, f.rdb, s.Key(q, keys.Handoffs)) {
			h, err := DecodeHandoff(raw)
			require.NoError(t, err)
			require.Equal(t, byte(HandoffTick), h.Kind)
			out = append(out, h.Tick)
		}
		return out
	}
	ids := func(ts []MemberTick) []string {
		var out []string
		for _, tk := range ts {
			out = append(out, tk.ID[:2])
		}
		return out
	}

	// laps runs n of this library's laps, in which nothing is handed out:
	// a done mid behind the circle's sentinel is met on the second.
	laps := func(n int) {
		t.Helper()
		for range n {
			require.Empty(t, f.lap())
		}
	}

	// m1: a Carmine success, no window.
	f.mustEnqueue(EnqueueMessage{ID: "m1", Data: []byte("1"), Policy: Policy{Batch: ref}})
	require.Equal(t, "m1", f.carmineHandle(60000))
	f.carmineOutcome("m1", true, 0)
	require.Empty(t, ticks(), "Carmine's outcome writes no tick")
	laps(2)
	require.Equal(t, []string{"m1"}, ids(ticks()), "this library's poll collected it, and ticked")
	require.Empty(t, f.ourStatuses([]string{"m1"}), "collected")

	// m2: a Carmine success with a dedupe window: ticked once the window
	// ended and the poll collects it.
	f.mustEnqueue(EnqueueMessage{ID: "m2", Data: []byte("2"), Policy: Policy{Batch: ref}})
	require.Equal(t, "m2", f.carmineHandle(60000))
	f.carmineOutcome("m2", true, 5000)
	laps(2)
	require.Equal(t, []string{"m1"}, ids(ticks()), "in its window: not collected yet")
	f.advance(6 * time.Second)
	laps(2)
	require.Equal(t, []string{"m1", "m2"}, ids(ticks()))

	// m3: this library's success with a window: one tick, at the outcome.
	f.mustEnqueue(EnqueueMessage{ID: "m3", Data: []byte("3"), Policy: Policy{Batch: ref}})
	h := f.lap()
	require.Len(t, h, 1)
	require.Equal(t, []bool{true}, f.complete(Completion{ID: "m3", LockedUntil: h[0].LockedUntil, Outcome: OutcomeSuccess, Backoff: 5 * time.Second}))
	require.Equal(t, []string{"m1", "m2", "m3"}, ids(ticks()))
	f.advance(6 * time.Second)
	laps(2)
	require.Empty(t, f.ourStatuses([]string{"m3"}), "collected")
	require.Equal(t, []string{"m1", "m2", "m3"}, ids(ticks()), "no second tick at its collection")

	// The three count as succeeded, and complete the batch.
	var last string
	for _, tk := range ticks() {
		a, err := BatchTick(f.ctx, f.rdb, s.Keys(cq), tk, time.Hour)
		require.NoError(t, err)
		last = a
	}
	require.Equal(t, TickComplete, last)
	st, err := BatchRead(f.ctx, f.rdb, s.Keys(cq), "b1")
	require.NoError(t, err)
	require.Equal(t, int64(3), st.Succeeded)
}

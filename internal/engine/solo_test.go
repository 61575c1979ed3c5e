package engine

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Quarantine without innocent victims, the worker's side
// (docs/protocol.md §11): a suspect held alone stops the polls until it
// is finished; a suspect left behind makes the worker drain.

// TestRoomSoloAndDrain: the room's own accounting.
func TestRoomSoloAndDrain(t *testing.T) {
	r := NewRoom(4, 0, false, time.Minute)
	require.Equal(t, 4, r.TryTake(0))
	assert.Equal(t, 0, r.Held(4), "nothing held but what this poll takes")
	r.Finish(3) // the poll handed out one, a suspect alone
	r.Solo()
	assert.Equal(t, 0, r.TryTake(0), "nothing more while the suspect is held")
	r.finishDelivery(&Delivery{Step: protocol.Step{Solo: true}}, false)
	assert.Equal(t, int64(0), r.SoloHeld())
	require.Equal(t, 4, r.TryTake(0), "the suspect finished: polls go on")

	r.Finish(2) // two held
	r.Drain(time.Hour)
	assert.Equal(t, 0, r.TryTake(0), "draining: nothing until nothing is held")
	r.Finish(1)
	assert.Equal(t, 0, r.TryTake(0))
	r.Finish(1)
	require.Equal(t, 4, r.TryTake(0), "drained")
	assert.Equal(t, 0, r.Held(4))
}

// scriptedStore answers the polls from a script, one reply per call, and
// then end-of-queue sleeps; it sends each call's arguments on calls.
type scriptedStore struct {
	fakeSleepStore
	mu      sync.Mutex
	replies [][]protocol.Step
	calls   chan protocol.PollArgs
}

func (s *scriptedStore) Poll(_ context.Context, a protocol.PollArgs) (protocol.PollReply, error) {
	s.mu.Lock()
	steps := []protocol.Step{{Kind: protocol.StepSleep, Sleep: time.Hour, SleepList: "a"}}
	if len(s.replies) > 0 {
		steps, s.replies = s.replies[0], s.replies[1:]
	}
	s.mu.Unlock()
	s.calls <- a
	return protocol.PollReply{QueueSize: -1, Recorded: make([]bool, len(a.Completions)), Steps: steps, Sent: time.Now()}, nil
}

// TestFetcherSoloAndDrain: a poll that left a suspect behind makes the
// worker take nothing until it holds nothing, and not sleep; its next
// poll tells Redis it holds nothing; a suspect handed out alone stops
// the polls until it is finished.
func TestFetcherSoloAndDrain(t *testing.T) {
	handle := func(id string, solo bool) protocol.Step {
		return protocol.Step{Kind: protocol.StepHandle, ID: id, Attempt: 2, LockTime: time.Minute, LockedUntil: 1, Solo: solo}
	}
	sleep := protocol.Step{Kind: protocol.StepSleep, Sleep: time.Hour, SleepList: "a"}
	store := &scriptedStore{
		fakeSleepStore: fakeSleepStore{nudged: make(chan struct{}, 1)},
		replies: [][]protocol.Step{
			{handle("a", false)},
			{{Kind: protocol.StepSkip, Reason: protocol.SkipSuspect}, sleep},
			{handle("s", true)},
		},
		calls: make(chan protocol.PollArgs, 8),
	}
	room := NewRoom(2, 0, false, time.Minute)
	f := NewFetcher(FetcherConfig{
		WorkerThreads:     1,
		LockTime:          time.Minute,
		EndOfQueueBackoff: func(int) time.Duration { return time.Hour },
		Store:             store,
		Room:              room,
		Completer:         &fakeOutcomes{alarm: newAlarm()},
		Events:            &fakeFetcherEvents{asleep: make(chan struct{}, 4)},
		Log:               slog.New(slog.DiscardHandler),
	})
	deliveries := make(chan Delivery, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		receive(t, f.Done())
	}()
	f.Start(ctx, deliveries)

	assert.Equal(t, 0, receive(t, store.calls).Held)
	a := receive(t, deliveries)
	assert.Equal(t, 1, receive(t, store.calls).Held, "a held")
	room.finishDelivery(&a, false)
	third := receive(t, store.calls)
	assert.Equal(t, 0, third.Held, "the worker drained before it polled again, instead of sleeping")
	s := receive(t, deliveries)
	require.True(t, s.Step.Solo)
	room.finishDelivery(&s, false)
	assert.Equal(t, 0, receive(t, store.calls).Held, "nothing polled while the suspect was held")
	assert.False(t, room.Draining(), "a poll holding nothing ended the drain")
}

// TestHoldingsShared: two workers of one process count together: one's
// messages are held for the other's polls, a suspect held alone by one
// stops the other, and its end wakes the other.
func TestHoldingsShared(t *testing.T) {
	var h Holdings
	a, b := NewRoom(2, 0, false, time.Minute), NewRoom(2, 0, false, time.Minute)
	a.Share(&h)
	b.Share(&h)
	h.Join(a)
	h.Join(b)
	require.Equal(t, 2, a.TryTake(0))
	a.Finish(1) // one message held
	require.Equal(t, 2, b.TryTake(0))
	assert.Equal(t, 1, b.Held(2), "a's message is held for b's poll")
	b.Finish(2)
	a.Finish(1)

	require.Equal(t, 2, a.TryTake(0))
	a.Solo() // a's poll handed out a suspect alone (a holds it)
	a.Finish(1)
	assert.Equal(t, 0, b.TryTake(0), "nothing taken in the process while the suspect is held")
	a.finishDelivery(&Delivery{Step: protocol.Step{Solo: true}}, false)
	receive(t, b.Freed())
	assert.Equal(t, 2, b.TryTake(0))
	assert.Equal(t, int64(2), h.Held())
	h.Leave(b)
	b.Finish(2)
	assert.Equal(t, int64(0), h.Held(), "a room that left still counts down")
}

// TestRoomLapse: a handling whose lock ran out while its handler still
// runs no longer counts as held, and a suspect held alone whose lock ran
// out no longer stops the polls.
func TestRoomLapse(t *testing.T) {
	r := NewRoom(2, 0, false, time.Minute)
	require.Equal(t, 2, r.TryTake(0))
	r.Finish(1)
	d := &Delivery{Step: protocol.Step{Solo: true}}
	r.Solo()
	assert.Equal(t, 0, r.TryTake(0))
	r.lapse(d)
	assert.Equal(t, 0, r.Held(0), "its message is no longer the worker's")
	require.Equal(t, 1, r.TryTake(0), "nor does it hold the polls back")
	r.Finish(1)
	r.finishDelivery(d, true)
	assert.Equal(t, int64(0), r.Taken())
	assert.Equal(t, 0, r.Held(0))
	assert.Equal(t, int64(0), r.SoloHeld())
}

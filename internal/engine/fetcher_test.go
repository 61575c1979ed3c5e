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

// The fetcher on its own: a fake store answers its polls, and a fake
// completer holds the outcomes that ride on them.

// fakeSleepStore hands out the ids of handOut, one poll each, then answers
// end-of-queue sleeps, which block until ctx ends or d passes.
type fakeSleepStore struct {
	nudged  chan struct{} // a nudge wakes the blocked sleep, as in Redis
	mu      sync.Mutex
	handOut []string
	calls   []protocol.PollArgs
}

func (s *fakeSleepStore) Poll(_ context.Context, a protocol.PollArgs) (protocol.PollReply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, a)
	r := protocol.PollReply{QueueSize: -1, Recorded: make([]bool, len(a.Completions)), Sent: time.Now()}
	for i := range r.Recorded {
		r.Recorded[i] = true
	}
	if len(s.handOut) > 0 {
		id := s.handOut[0]
		s.handOut = s.handOut[1:]
		r.Steps = []protocol.Step{{Kind: protocol.StepHandle, ID: id, Attempt: 1, LockTime: time.Minute, LockedUntil: 1}}
		return r, nil
	}
	r.Steps = []protocol.Step{{Kind: protocol.StepSleep, Sleep: time.Hour, SleepList: "a"}}
	return r, nil
}

func (s *fakeSleepStore) Renew(context.Context, []protocol.Renewal) ([]int64, error) { return nil, nil }
func (s *fakeSleepStore) Beat(context.Context, string, time.Duration, []byte) error  { return nil }
func (s *fakeSleepStore) Gone(context.Context, string) error                         { return nil }
func (s *fakeSleepStore) SleepLists(*protocol.Step) (string, string)                 { return "from", "to" }
func (s *fakeSleepStore) HasReady(context.Context) (bool, error)                     { return false, nil }

func (s *fakeSleepStore) Nudge(context.Context, string, string) error {
	s.nudged <- struct{}{}
	return nil
}

func (s *fakeSleepStore) BlockingMove(ctx context.Context, _, _ string, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.nudged:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, nil
	}
}

// fakeOutcomes is a completer holding pending outcomes for the polls.
type fakeOutcomes struct {
	mu       sync.Mutex
	pending  []Pending
	recorded []string
	alarm    alarm
}

func (o *fakeOutcomes) Take(n int) []Pending {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(n, len(o.pending))
	b := o.pending[:n]
	o.pending = o.pending[n:]
	return b
}

func (o *fakeOutcomes) Done(batch []Pending, recorded []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, p := range batch {
		if recorded[i] {
			o.recorded = append(o.recorded, p.ID)
		}
	}
}

func (o *fakeOutcomes) Adopt(*Poller)            {}
func (o *fakeOutcomes) Asleep()                  {}
func (o *fakeOutcomes) Awoken()                  {}
func (o *fakeOutcomes) Readied() <-chan struct{} { return o.alarm.wait() }

type fakeFetcherEvents struct{ asleep chan struct{} }

func (e *fakeFetcherEvents) Polled(context.Context, PollInfo) {}
func (e *fakeFetcherEvents) QueueSize(int64)                  {}
func (e *fakeFetcherEvents) Skipped(string)                   {}
func (e *fakeFetcherEvents) PollFailed()                      {}
func (e *fakeFetcherEvents) BurstPoll()                       {}
func (e *fakeFetcherEvents) Asleep()                          { e.asleep <- struct{}{} }

// TestFetcherCarriesOutcomesAndDelivers: one poll records the outcomes
// pulled from the completer and hands out a message; at the end of the
// queue the loop sleeps, until the completer's alarm wakes it to poll
// again; it ends with its context.
func TestFetcherCarriesOutcomesAndDelivers(t *testing.T) {
	store := &fakeSleepStore{handOut: []string{"m"}, nudged: make(chan struct{}, 1)}
	outcomes := &fakeOutcomes{
		pending: []Pending{{Completion: protocol.Completion{ID: "done", LockedUntil: 1, Outcome: protocol.OutcomeSuccess}}},
		alarm:   newAlarm(),
	}
	ev := &fakeFetcherEvents{asleep: make(chan struct{}, 4)}
	room := NewRoom(1, 0, false, time.Minute)
	f := NewFetcher(FetcherConfig{
		WorkerThreads:     1,
		LockTime:          time.Minute,
		EndOfQueueBackoff: func(int) time.Duration { return time.Hour },
		Store:             store,
		Room:              room,
		Completer:         outcomes,
		Events:            ev,
		Log:               slog.New(slog.DiscardHandler),
	})
	deliveries := make(chan Delivery, 1)
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx, deliveries)

	d := receive(t, deliveries)
	assert.Equal(t, "m", d.Step.ID)
	room.Finish(1) // handled
	receive(t, ev.asleep)
	store.mu.Lock()
	first := store.calls[0]
	polls := len(store.calls)
	store.mu.Unlock()
	require.Len(t, first.Completions, 1, "the first poll carried the outcome")
	assert.Equal(t, "done", first.Completions[0].ID)
	outcomes.mu.Lock()
	assert.Equal(t, []string{"done"}, outcomes.recorded, "and reported it recorded")
	outcomes.mu.Unlock()

	outcomes.alarm.ring()
	receive(t, ev.asleep) // polled again, and asleep again
	store.mu.Lock()
	assert.Greater(t, len(store.calls), polls, "the alarm woke the loop to poll")
	store.mu.Unlock()

	cancel()
	receive(t, f.Done())
}

// quickRoom is the room of a worker of 2 handlers and a prefetch of 2
// whose handlings have been seen to be quick (Room.Finishing's threshold).
func quickRoom() *Room {
	r := NewRoom(2, 2, false, time.Minute)
	for range 64 {
		r.handled(time.Microsecond)
	}
	return r
}

// TestRoomFinishing: a poll under way while the handlers still hold
// messages, with quick handlings; not without a poll under way, nor with
// nothing in hand, nor when handlings are slow or throttled.
func TestRoomFinishing(t *testing.T) {
	r := quickRoom()
	require.Equal(t, 4, r.TryTake(0))
	assert.False(t, r.Finishing(), "no poll under way")
	r.Sending(3) // a loop's poll took 3, one is in hand
	assert.True(t, r.Finishing())
	r.Finish(1) // the one in hand was handled
	assert.False(t, r.Finishing(), "nothing in hand")
	require.Equal(t, 1, r.TryTake(0))
	assert.True(t, r.Finishing(), "what a loop took for its poll about to go counts as in hand")
	r.Finish(1)
	r.Answered(3) // the poll came back...
	assert.False(t, r.Finishing(), "...and none is under way")

	slow := NewRoom(2, 2, false, time.Minute)
	require.Equal(t, 2, slow.TryTake(0))
	slow.Sending(1)
	assert.False(t, slow.Finishing(), "handlings not seen to be quick")

	throttled := NewRoom(2, 2, true, time.Minute)
	for range 64 {
		throttled.handled(time.Microsecond)
	}
	require.Equal(t, 2, throttled.TryTake(0))
	throttled.Sending(1)
	assert.False(t, throttled.Finishing(), "throttled")
}

// asleepOutcomes is a fakeOutcomes that tells when a loop parks
// (Completer.Asleep).
type asleepOutcomes struct {
	fakeOutcomes
	asleep chan struct{}
}

func (o *asleepOutcomes) Asleep() { o.asleep <- struct{}{} }

// TestReserveWaitsForHandlingsInHand: with nothing waiting for a handler
// and another poll under way, a loop about to poll waits for the quick
// handlings in hand, and then takes their room too, in one poll; once
// settleWait passed, or once the other poll was answered (its messages
// then wait for a handler), the room there is will do.
func TestReserveWaitsForHandlingsInHand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settle   time.Duration
		answered bool
		want     int
	}{
		{"handlings done", time.Hour, false, 2},
		{"waited long enough", 0, false, 1},
		{"the other poll answered", time.Hour, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := quickRoom()
			out := &asleepOutcomes{fakeOutcomes: fakeOutcomes{alarm: newAlarm()}, asleep: make(chan struct{}, 1)}
			f := NewFetcher(FetcherConfig{Room: room, Completer: out, Log: slog.New(slog.DiscardHandler)})
			f.settleWait = tc.settle
			require.Equal(t, 4, room.TryTake(0))
			room.Sending(2) // the other loop's poll
			room.Finish(1)  // of the two in hand, one was handled

			got := make(chan int, 1)
			deliveries := make(chan Delivery, 4)
			go func() { got <- f.reserve(context.Background(), deliveries) }()
			if tc.settle > 0 {
				// It parked, past maxOutcomeDelay: it waits, and took nothing.
				select {
				case n := <-got:
					t.Fatalf("took %d without waiting for the handling in hand", n)
				case <-out.asleep:
				}
				assert.Equal(t, int64(3), room.Taken())
				if tc.answered {
					deliveries <- Delivery{}
					deliveries <- Delivery{}
					room.Answered(2)
				} else {
					room.Finish(1) // the other handled
				}
			}
			assert.Equal(t, tc.want, receive(t, got))
		})
	}
}

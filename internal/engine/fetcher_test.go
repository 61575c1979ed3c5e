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

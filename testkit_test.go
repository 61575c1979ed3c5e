package mq

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The test kit: waiting on a worker's events (Worker.Subscribe) instead of
// polling its counters.

// eventTimeout bounds every wait for an event: generous, for a loaded
// machine; a test that meets it has failed.
const eventTimeout = 30 * time.Second

// subscribe subscribes to w's events of the given kinds for the rest of
// the test.
func subscribe(t *testing.T, w *Worker, kinds ...EventKind) <-chan Event {
	t.Helper()
	ch, stop := w.Subscribe(kinds...)
	t.Cleanup(stop)
	return ch
}

// waitEvent waits for the first event on ch that match accepts, and
// answers it; events before it are dropped.
func waitEvent(t *testing.T, ch <-chan Event, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.NewTimer(eventTimeout)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("subscription ended waiting for %s", what)
			}
			if match == nil || match(e) {
				return e
			}
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
			return Event{}
		}
	}
}

// waitAsleep waits for a polling loop to block at the end of the queue.
func waitAsleep(t *testing.T, ch <-chan Event) {
	t.Helper()
	waitEvent(t, ch, "the worker asleep", func(e Event) bool { return e.Kind == EventAsleep })
}

// waitHandled waits for the handling of message id, attempt (any when 0),
// to be settled, and answers its outcome.
func waitHandled(t *testing.T, ch <-chan Event, id string, attempt int) Outcome {
	t.Helper()
	e := waitEvent(t, ch, "message "+id+" handled", func(e Event) bool {
		return e.Kind == EventHandled && e.ID == id && (attempt == 0 || e.Attempt == attempt)
	})
	return e.Outcome
}

// waitAllSucceeded waits until a handling of every message of ids (first
// attempts or not) has succeeded, in whatever order.
func waitAllSucceeded(t *testing.T, ch <-chan Event, ids ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, id := range ids {
		left[id] = true
	}
	for len(left) > 0 {
		e := waitEvent(t, ch, fmt.Sprintf("%d more messages handled", len(left)), func(e Event) bool {
			return e.Kind == EventHandled && e.Outcome == OutcomeSucceeded && left[e.ID]
		})
		delete(left, e.ID)
	}
}

// startSubscribed makes a worker of c for q, subscribes to all its events
// and starts it; it is closed when the test ends.
func startSubscribed(t *testing.T, c *Client, q string, cfg *WorkerConfig) (*Worker, <-chan Event) {
	t.Helper()
	w, err := c.NewWorker(q, cfg)
	require.NoError(t, err)
	ev := subscribe(t, w)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	return w, ev
}

// waitOutcomes waits until handlings have settled with the outcomes of
// want, at least as many of each as want says, whatever else settles
// meanwhile.
func waitOutcomes(t *testing.T, ch <-chan Event, want map[Outcome]int) {
	t.Helper()
	seen := map[Outcome]int{}
	for {
		left := false
		for o, n := range want {
			left = left || seen[o] < n
		}
		if !left {
			return
		}
		e := waitEvent(t, ch, fmt.Sprintf("outcomes %v (seen %v)", want, seen), func(e Event) bool { return e.Kind == EventHandled })
		seen[e.Outcome]++
	}
}

// waitKind waits for n events of kind k.
func waitKind(t *testing.T, ch <-chan Event, k EventKind, n int) {
	t.Helper()
	for i := range n {
		waitEvent(t, ch, fmt.Sprintf("%s event %d of %d", k, i+1, n), func(e Event) bool { return e.Kind == k })
	}
}

// merged subscribes to the events of kinds of every worker of ws on one
// channel, for the rest of the test.
func merged(t *testing.T, ws []*Worker, kinds ...EventKind) <-chan Event {
	t.Helper()
	out := make(chan Event, subscriberBuffer)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the subscriptions end (cleanups run last first)
	for _, w := range ws {
		ch, stop := w.Subscribe(kinds...)
		t.Cleanup(stop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range ch {
				select {
				case out <- e:
				default: // dropped, as Subscribe drops
				}
			}
		}()
	}
	return out
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObserverSeesEveryHandling runs a worker with an Observer on a real
// redis-server over handlings of every outcome, and checks that each is
// observed once, with its queue, attempt, outcome, answer, a handling time
// that covers the handler's own and a queueing time that covers an initial
// backoff.
func TestObserverSeesEveryHandling(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)

	var mu sync.Mutex
	seen := map[string][]Handling{}     // by "id#attempt"
	inner := map[string]time.Duration{} // the handler's own measure, by "id#attempt"
	key := func(id string, attempt int) string { return fmt.Sprintf("%s#%d", id, attempt) }
	observed := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, hs := range seen {
			n += len(hs)
		}
		return n
	}
	stuck := make(chan struct{})
	w, ev := startSubscribed(t, c, q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		// "fail" and "panic" are not handled again within the test: with
		// the default backoff (about 1 s), a loaded machine saw their
		// second attempts, and the count of observed handlings went past
		// the one waited for.
		RetryBackoff: Constant(time.Hour),
		Observer: ObserverFunc(func(h Handling) {
			mu.Lock()
			defer mu.Unlock()
			seen[key(h.ID, h.Attempt)] = append(seen[key(h.ID, h.Attempt)], h)
		}),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			start := time.Now()
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				inner[key(m.ID, m.Attempt)] = time.Since(start)
			}()
			switch m.ID {
			case "window":
				return SucceedWithBackoff(time.Hour)
			case "retry":
				if m.Attempt == 1 {
					return Retry(0)
				}
			case "fail":
				return errors.New("boom")
			case "panic":
				panic("boom")
			case "stuck":
				close(stuck)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}),
	})

	for _, id := range []string{"ok", "window", "retry", "fail", "panic"} {
		enqueue(t, c, q, id, &EnqueueOptions{MessageID: id})
	}
	const backoff = 50 * time.Millisecond
	enqueue(t, c, q, "late", &EnqueueOptions{MessageID: "late", InitialBackoff: backoff})
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 4, OutcomeRetried: 1, OutcomeFailed: 2})
	require.Equal(t, 7, observed(), "every handling is observed before its outcome is recorded")

	enqueue(t, c, q, "stuck", &EnqueueOptions{MessageID: "stuck"})
	<-stuck
	require.NoError(t, w.Close()) // cancels the stuck handler, which gives up
	queuetest.WaitFor(t, "the abandoned handling observed", func() bool { return observed() >= 8 })

	mu.Lock()
	defer mu.Unlock()
	want := map[string]Outcome{
		"ok#1": OutcomeSucceeded, "window#1": OutcomeSucceeded, "retry#1": OutcomeRetried,
		"retry#2": OutcomeSucceeded, "fail#1": OutcomeFailed, "panic#1": OutcomeFailed,
		"late#1": OutcomeSucceeded, "stuck#1": OutcomeAbandoned,
	}
	require.Len(t, seen, len(want))
	for k, outcome := range want {
		require.Len(t, seen[k], 1, k)
		h := seen[k][0]
		assert.Equal(t, q, h.Queue, k)
		assert.Equal(t, outcome, h.Outcome, k)
		assert.GreaterOrEqual(t, h.HandlingTime, inner[k], "%s: the handling time covers the handler's own", k)
		assert.GreaterOrEqual(t, h.Age, time.Duration(0), k)
	}
	assert.NoError(t, seen["ok#1"][0].Err)
	var a *Answer
	require.ErrorAs(t, seen["window#1"][0].Err, &a)
	assert.Equal(t, OutcomeSucceeded, a.Kind)
	require.ErrorAs(t, seen["retry#1"][0].Err, &a)
	assert.Equal(t, OutcomeRetried, a.Kind)
	assert.EqualError(t, seen["fail#1"][0].Err, "boom")
	assert.True(t, strings.HasPrefix(seen["panic#1"][0].Err.Error(), "mq: handler panicked: boom"), seen["panic#1"][0].Err)
	assert.ErrorIs(t, seen["stuck#1"][0].Err, context.Canceled)
	assert.GreaterOrEqual(t, seen["late#1"][0].Age, backoff, "the queueing time covers the initial backoff")
	assert.GreaterOrEqual(t, seen["retry#2"][0].Age, seen["retry#1"][0].Age, "Age counts from the first enqueue")
}

package mq

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOnePubSubConnection: a client running a worker (its cancel watch)
// and waiting for a result holds one Pub/Sub connection; after Redis is
// restarted it subscribes again on one connection, a cancel still ends a
// handling at once (the lock time of a minute leaves no renewal to catch
// it) and a wait for a result still gets its result (each read waits for
// its channel's subscription to be confirmed again).
func TestOnePubSubConnection(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := resultClient(t, s)
	q, rq := queuetest.QueueName(t), queuetest.QueueName(t)+"-results"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := newBlockingHandler()
	w, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: h, LockTime: time.Minute,
		EndOfQueueBackoff: Constant(20 * time.Millisecond)})

	wait := func(id string) <-chan error {
		answer := make(chan error, 1)
		go func() {
			r, err := c.WaitResult(ctx, rq, id)
			var got string
			if err == nil {
				err = r.Decode(&got)
			}
			if err == nil && got != strings.ToUpper(id) {
				err = fmt.Errorf("result %q, want %q", got, strings.ToUpper(id))
			}
			answer <- err
		}()
		return answer
	}
	joined := func() bool {
		c.results.mu.Lock()
		waits := c.results.waits
		c.results.mu.Unlock()
		c.cancels.mu.Lock()
		defer c.cancels.mu.Unlock()
		return waits == 1 && len(c.cancels.channels) == 1
	}
	enqueueID(t, c, rq, "before", "before") // no worker on rq yet: its result is pending
	before := wait("before")
	queuetest.WaitFor(t, "the worker's cancel watch and the wait to join", joined)
	assert.Equal(t, 1, pubsubConns(t, s), "one Pub/Sub connection for the cancel watch and the results")

	s.Real.Kill(t)
	waitKind(t, ev, EventPollFailed, 1)
	s.Real.Restart(t)

	// The cancel watch, subscribed again: a cancel ends a handling at once.
	cancelAfterRestart(t, c, q, h, w, ev)

	// The results, subscribed again: the wait from before the restart and
	// one after it get their results.
	enqueueID(t, c, rq, "after", "after")
	after := wait("after")
	queuetest.WaitFor(t, "the second wait to join", func() bool {
		c.results.mu.Lock()
		defer c.results.mu.Unlock()
		return c.results.waits == 2
	})
	upperWorker(t, c, rq)
	require.NoError(t, <-before)
	require.NoError(t, <-after)
	assert.Equal(t, 1, pubsubConns(t, s), "one Pub/Sub connection after the restart")
}

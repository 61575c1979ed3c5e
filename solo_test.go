package mq

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSuspectWaitsForTheWholeProcess: docs/protocol.md §11, Quarantine.
// What a poll tells Redis it holds is the process's: while one worker of
// a client holds a message, another worker of the client, holding
// nothing itself, sets a suspect aside instead of taking it; once the
// first is done, the process holds nothing and the suspect is handled,
// alone.
func TestSuspectWaitsForTheWholeProcess(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	ctx := context.Background()
	qa, qb := queuetest.QueueName(t)+":a", queuetest.QueueName(t)+":b"

	holding, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	a, err := c.StartWorker(ctx, qa, &WorkerConfig{Handler: HandlerFunc(func(context.Context, *Message) error {
		close(holding)
		<-release
		return nil
	})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	t.Cleanup(let) // first, should the test fail before
	enqueue(t, c, qa, "x", &EnqueueOptions{MessageID: "held"})
	<-holding

	// A suspect: handed out once before, without an outcome.
	enqueue(t, c, qb, "x", &EnqueueOptions{MessageID: "suspect"})
	require.NoError(t, s.RDB.HIncrBy(ctx, s.Key(qb, keys.NAttempts), "suspect", 1).Err())
	handled := make(chan int, 1)
	b, err := c.StartWorker(ctx, qb, &WorkerConfig{HandlerThreads: 4, LockTime: time.Minute,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			select {
			case <-release:
			default:
				t.Errorf("the suspect handled while the process held another message")
			}
			handled <- m.Attempt
			return nil
		})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	queuetest.WaitFor(t, "the suspect set aside", func() bool { return b.Stats().Counts.Skips.Suspect >= 1 })
	let()
	select {
	case a := <-handled:
		assert.Equal(t, 2, a)
	case <-time.After(30 * time.Second):
		t.Fatal("the suspect never handled")
	}
}

package mq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/require"
)

// handling is what a test handler saw of one call.
type handling struct {
	id      string
	attempt int
	value   string
}

// startWorker starts a worker whose handler reports every call on the
// returned channel, then answers with answer(call). It is closed when the
// test ends.
func startWorker(t *testing.T, c *Client, q string, cfg WorkerConfig, answer func(ctx context.Context, h handling) error) (*Worker, <-chan handling) {
	t.Helper()
	w, calls, _ := startWorkerEvents(t, c, q, cfg, answer)
	return w, calls
}

// startWorkerEvents is startWorker, with a subscription to every event of
// the worker from its start on.
func startWorkerEvents(t *testing.T, c *Client, q string, cfg WorkerConfig, answer func(ctx context.Context, h handling) error) (*Worker, <-chan handling, <-chan Event) {
	t.Helper()
	calls := make(chan handling, 1000)
	cfg.Handler = HandlerFunc(func(ctx context.Context, m *Message) error {
		var v string
		_ = m.Decode(&v)
		h := handling{id: m.ID, attempt: m.Attempt, value: v}
		calls <- h
		if answer == nil {
			return nil
		}
		return answer(ctx, h)
	})
	if cfg.EndOfQueueBackoff == nil {
		cfg.EndOfQueueBackoff = Constant(20 * time.Millisecond)
	}
	w, err := c.NewWorker(q, &cfg)
	require.NoError(t, err)
	events := subscribe(t, w)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	return w, calls, events
}

// next waits for the next handler call.
func next(t *testing.T, calls <-chan handling) handling {
	t.Helper()
	select {
	case h := <-calls:
		return h
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a handler call")
		return handling{}
	}
}

func statusOf(t *testing.T, c *Client, q, id string) MessageStatus {
	t.Helper()
	st, err := c.Inspector().MessageStatus(context.Background(), q, id)
	require.NoError(t, err)
	return st
}

func waitStatus(t *testing.T, c *Client, q, id string, want MessageStatus) {
	t.Helper()
	queuetest.WaitFor(t, fmt.Sprintf("%s to be %s", id, want), func() bool { return statusOf(t, c, q, id) == want })
}

func enqueue(t *testing.T, c *Client, q string, msg any, opts *EnqueueOptions) EnqueueResult {
	t.Helper()
	res, err := c.Enqueue(context.Background(), q, msg, opts)
	require.NoError(t, err)
	return res
}

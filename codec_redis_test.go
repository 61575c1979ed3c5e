package mq

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestForeignContentOnQueue: Nippy, JSON and text enqueued as Raw on a
// real redis-server reach a handler whose Value is an error wrapping
// ErrDecode with the reason, and QueueContent lists them with DecodeErr
// set (issue 9, item 2).
func TestForeignContentOnQueue(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	want := map[string]payload{}
	for _, p := range foreignPayloads() {
		enqueue(t, c, q, Raw(p.data), &EnqueueOptions{MessageID: p.name})
		want[p.name] = p
	}

	content, err := c.Inspector().QueueContent(ctx, q)
	require.NoError(t, err)
	require.Len(t, content, len(want))
	for _, m := range content {
		p := want[m.ID]
		assert.Equal(t, p.data, m.Data, m.ID)
		assert.Nil(t, m.Value, m.ID)
		assert.ErrorIs(t, m.DecodeErr, ErrDecode, m.ID)
		assert.ErrorContains(t, m.DecodeErr, p.reason, m.ID)
	}

	type handled struct {
		id    string
		value any
		err   error
	}
	calls := make(chan handled, 10)
	w, ev := startSubscribed(t, c, q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			v, err := m.Value()
			calls <- handled{m.ID, v, err}
			return err
		}),
	})
	got := map[string]handled{}
	for range want {
		select {
		case h := <-calls:
			got[h.id] = h
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for the handler; got %v", got)
		}
	}
	for id, p := range want {
		h := got[id]
		assert.Nil(t, h.value, id)
		assert.ErrorIs(t, h.err, ErrDecode, id)
		assert.ErrorContains(t, h.err, p.reason, id)
	}
	waitOutcomes(t, ev, map[Outcome]int{OutcomeFailed: len(want)})
	assert.Zero(t, w.Stats().Counts.Succeeded)
}

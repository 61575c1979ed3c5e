package mq

import (
	"context"
	"strings"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetadata: metadata travels beside the content to the handler, an
// update replaces it, and it goes with the message.
func TestMetadata(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "a", Metadata: map[string]string{"traceparent": "00-1-2-01", "k": "v"}})
		enqueue(t, c, q, "y", &EnqueueOptions{MessageID: "a", CanUpdate: true, Metadata: map[string]string{"traceparent": "00-3-4-01"}})
		enqueue(t, c, q, "z", &EnqueueOptions{MessageID: "b"})
		stored, err := c.Inspector().Message(ctx, q, "a")
		require.NoError(t, err)
		assert.NotContains(t, string(stored.Data), "traceparent", "the content is the message alone")
		assert.Equal(t, map[string]string{"traceparent": "00-3-4-01"}, stored.Metadata, "beside it")

		got := make(chan *Message, 2)
		_, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			got <- m
			return nil
		})})
		byID := map[string]map[string]string{}
		for range 2 {
			m := <-got
			byID[m.ID] = m.Metadata
		}
		assert.Equal(t, map[string]map[string]string{"a": {"traceparent": "00-3-4-01"}, "b": nil}, byID)
		waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 2})
		// That the metadata goes with its message is internal/protocol's
		// TestCompletionCollectsMetadata.
		gone, err := c.Inspector().Message(ctx, q, "a")
		require.NoError(t, err)
		assert.Equal(t, MessageInfo{ID: "a"}, gone, "collected")
	})
}

// TestMetadataTooLarge: metadata over 64 KiB is refused.
func TestMetadataTooLarge(t *testing.T) {
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	_, err := c.Enqueue(context.Background(), "q", "x", &EnqueueOptions{Metadata: map[string]string{"k": strings.Repeat("x", 70<<10)}})
	assert.ErrorIs(t, err, ErrMessageTooLarge)
}

package mq

import (
	"context"
	"strings"
	"testing"

	"github.com/gocarmine/mq/internal/keys"
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

// TestMetadataStaleOnlyUnderGivenIDs: with Carmine workers possible (the
// default config), metadata a Carmine worker's collection left under an
// id is deleted when a message without metadata is enqueued under it
// again; a message whose id the client drew at random cannot meet such
// an entry, and its enqueue deletes nothing (no HDEL at all: the lean
// script is not even passed meta, docs/protocol.md §3).
func TestMetadataStaleOnlyUnderGivenIDs(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	hdels := func() string {
		info, err := s.RDB.Info(ctx, "commandstats").Result()
		require.NoError(t, err)
		for line := range strings.SplitSeq(info, "\r\n") {
			if strings.HasPrefix(line, "cmdstat_hdel:") {
				return line
			}
		}
		return ""
	}
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Meta), "given", "stale").Err())
	enqueue(t, c, q, "x", nil) // the first registers the queue (§16)
	require.NoError(t, s.RDB.ConfigResetStat(ctx).Err())
	enqueue(t, c, q, "y", nil)
	enqueue(t, c, q, "w", nil)
	assert.Empty(t, hdels(), "random ids: nothing to delete")

	enqueue(t, c, q, "z", &EnqueueOptions{MessageID: "given"})
	assert.NotEmpty(t, hdels(), "a given id")
	assert.Zero(t, s.RDB.HExists(ctx, s.Key(q, keys.Meta), "given").Val(), "its stale metadata deleted")
}

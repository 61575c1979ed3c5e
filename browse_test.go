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

// browseAll pages through queue q with QueueMessages, checking each page's
// size, and answers how often each id was listed and the pages' sizes.
func browseAll(t *testing.T, c *Client, q string, limit int) (map[string]int, []int) {
	t.Helper()
	seen := map[string]int{}
	var sizes []int
	cursor := ""
	for range 10000 {
		page, err := c.Inspector().QueueMessages(context.Background(), q, cursor, limit)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Items), limit, "a page is at most limit long")
		sizes = append(sizes, len(page.Items))
		for _, m := range page.Items {
			seen[m.ID]++
		}
		if cursor = page.Cursor; cursor == "" {
			return seen, sizes
		}
	}
	t.Fatalf("the listing of %q never ended", q)
	return nil, nil
}

// TestQueueMessages: a paged listing sees every message with its status,
// whether Redis keeps the hash small (listpack, answered whole by one
// HSCAN call, which the cursor cuts into pages) or large (a hash table).
func TestQueueMessages(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()

		// A small queue, with one message of each kind of interest.
		q := queuetest.QueueName(t) + ":small"
		for i := range 7 {
			_, err := c.Enqueue(ctx, q, fmt.Sprintf("m%d", i), &EnqueueOptions{MessageID: fmt.Sprint(i)})
			require.NoError(t, err)
		}
		_, err := c.Enqueue(ctx, q, "later", &EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour})
		require.NoError(t, err)
		_, err = c.Enqueue(ctx, q, Raw(`{"json":true}`), &EnqueueOptions{MessageID: "json"})
		require.NoError(t, err)
		st := onePoll(t, c, q) // the first ready message, now locked

		seen, sizes := browseAll(t, c, q, 4)
		assert.Equal(t, []int{4, 4, 1}, sizes, "exact pages, the cursor cutting one HSCAN answer")
		require.Len(t, seen, 9)
		for id, n := range seen {
			assert.Equal(t, 1, n, "a small unchanged hash lists %s once", id)
		}

		page, err := c.Inspector().QueueMessages(ctx, q, "", 0)
		require.NoError(t, err)
		assert.Empty(t, page.Cursor, "the default page holds the whole small queue")
		byID := map[string]MessageInfo{}
		for _, m := range page.Items {
			byID[m.ID] = m
		}
		require.Len(t, byID, 9)
		assert.Equal(t, StatusLocked, byID[st.ID].Status)
		assert.Equal(t, int64(1), byID[st.ID].Attempts)
		assert.Equal(t, StatusQueuedWithBackoff, byID["later"].Status)
		assert.Greater(t, byID["later"].Backoff, 50*time.Minute)
		assert.Equal(t, "later", byID["later"].Value)
		assert.Equal(t, "m3", byID["3"].Value)
		assert.Equal(t, StatusQueued, byID["3"].Status)
		assert.ErrorIs(t, byID["json"].DecodeErr, ErrDecode, "undecodable, still listed")
		assert.Equal(t, []byte(`{"json":true}`), byID["json"].Data)

		// A page read after a delete leaves the message out.
		_, err = c.Inspector().DeleteMessage(ctx, q, "3")
		require.NoError(t, err)
		seen, _ = browseAll(t, c, q, 3)
		assert.Len(t, seen, 8)
		assert.NotContains(t, seen, "3")

		// A large queue: a hash table, which HSCAN answers in parts.
		big := queuetest.QueueName(t) + ":big"
		reqs := make([]EnqueueRequest, 1500)
		for i := range reqs {
			reqs[i] = EnqueueRequest{Message: strings.Repeat("x", 100), Options: &EnqueueOptions{MessageID: fmt.Sprint(i)}}
		}
		_, err = c.EnqueueMany(ctx, big, reqs...)
		require.NoError(t, err)
		seen, sizes = browseAll(t, c, big, 100)
		assert.Len(t, seen, 1500, "every message is listed")
		assert.Greater(t, len(sizes), 10, "in many pages, not one")
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s listed %d times in a hash that did not change", id, n)
			}
		}

		// Bad input.
		_, err = c.Inspector().QueueMessages(ctx, q, "12.x", 10)
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = c.Inspector().QueueMessages(ctx, q, "1.0", 10)
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = c.Inspector().QueueMessages(ctx, "a*", "", 10)
		assert.ErrorIs(t, err, ErrInvalidQueueName)
		empty, err := c.Inspector().QueueMessages(ctx, queuetest.QueueName(t)+":none", "", 10)
		require.NoError(t, err)
		assert.Equal(t, Page[MessageInfo]{Items: []MessageInfo{}}, empty)
	})
}

package protocol

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deleteOne deletes mid from q and answers whether it was there.
func deleteOne(t *testing.T, s *queuetest.Server, q string) bool {
	t.Helper()
	existed, err := Delete(context.Background(), s.RDB, s.Keys(q), []string{mid})
	require.NoError(t, err)
	require.Len(t, existed, 1)
	return existed[0]
}

// assertGone checks that no hash or set of q holds mid any more (the
// lists may: a poll drops it there).
func assertGone(t *testing.T, s *queuetest.Server, q string) {
	t.Helper()
	for suffix, text := range dumpQueue(t, s, q, s.Now(t)) {
		switch suffix {
		case keys.Suffixes[keys.MidsReady], keys.Suffixes[keys.MidCircle]:
			continue
		}
		assert.NotContains(t, strings.Fields(strings.Trim(text, "[]")), mid, "%s: %s", suffix, text)
		assert.NotContains(t, text, mid+"=", "%s: %s", suffix, text)
	}
}

// TestDelete: docs/protocol.md §10. A message goes whatever its status,
// with all its entries: a handler holding it is fenced off, a pending
// requeue never comes, a dedupe window no longer refuses the id, and the
// id enqueued again is a fresh message.
func TestDelete(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()

		q := "queued"
		assert.False(t, deleteOne(t, s, q), "nothing to delete")
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, InitialBackoff: time.Hour, LockTime: time.Minute})
		assert.True(t, deleteOne(t, s, q))
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid))
		assertGone(t, s, q)
		assert.False(t, deleteOne(t, s, q), "once")
		st := pollUntil(t, s, q, StepSleep, "")
		assert.Equal(t, StepSleep, st.Kind, "the id left in the lists is dropped, never handed out")
		code, err := enqueue(ctx, s, q, "y", &EnqueueMessage{ID: mid})
		require.NoError(t, err)
		assert.Equal(t, Added, code, "a fresh message")
		fresh := pollUntil(t, s, q, StepHandle, "")
		assert.Equal(t, "y", string(fresh.Data))
		assert.Equal(t, int64(1), fresh.Attempt)
		// The old id still stands in mid-circle beside the new one, for a
		// lap: the status gates each, so the message is handled once.
		ok, err := complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: fresh.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		for sleeps := 0; sleeps < 3; {
			switch st := onePoll(t, s, q); st.Kind {
			case StepHandle:
				t.Fatalf("%s handed out again", st.ID)
			case StepSleep:
				sleeps++
			}
		}
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid), "collected")
		assert.Equal(t, []string{"end-of-circle"}, list(t, s, q, keys.MidCircle), "both entries gone")

		q = "locked-with-requeue"
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid})
		held := pollUntil(t, s, q, StepHandle, "")
		mustEnqueue(t, s, q, "again", &EnqueueMessage{ID: mid, CanRequeue: true})
		require.Equal(t, StatusLockedWithRequeue, statusOf(t, s, q, mid))
		assert.True(t, deleteOne(t, s, q))
		assertGone(t, s, q)
		ok, err = complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: held.LockedUntil, Outcome: OutcomeSuccess}})
		require.NoError(t, err)
		assert.Equal(t, []bool{false}, ok, "the handler's outcome is fenced off")
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid))
		assert.Equal(t, StepSleep, pollUntil(t, s, q, StepSleep, "").Kind, "the requeue never comes")
		assert.Equal(t, StatusNone, statusOf(t, s, q, mid))

		q = "done-with-backoff"
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid})
		held = pollUntil(t, s, q, StepHandle, "")
		ok, err = complete(ctx, s, q, []Completion{{ID: mid, LockedUntil: held.LockedUntil, Outcome: OutcomeSuccess, Backoff: time.Hour}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
		code, err = enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid})
		require.NoError(t, err)
		require.Equal(t, Backoff, code, "in its dedupe window")
		assert.True(t, deleteOne(t, s, q))
		assertGone(t, s, q)
		code, err = enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid})
		require.NoError(t, err)
		assert.Equal(t, Added, code, "the window went with the message")

		// Many ids in one call, answered in order.
		q = "many"
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "a"})
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "c"})
		existed, err := Delete(ctx, s.RDB, s.Keys(q), []string{"a", "b", "c"})
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false, true}, existed)
	})
}

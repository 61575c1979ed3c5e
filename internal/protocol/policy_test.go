package protocol

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of docs/protocol.md §14: per-message policy and dedupe
// windows, at the protocol's level.

// TestPolicyEncoding: a policy survives its encoding, and a damaged or
// unknown one is refused.
func TestPolicyEncoding(t *testing.T) {
	p := Policy{MaxAttempts: -1, Backoff: BackoffSpec{Kind: "exp", Base: time.Second, Max: time.Hour, Jitter: 0.25},
		Timeout: 30 * time.Second, UniqueFor: 24 * time.Hour}
	got, err := DecodePolicy(EncodePolicy(p))
	require.NoError(t, err)
	assert.Equal(t, p, got)
	b := EncodePolicy(p)
	for _, bad := range [][]byte{b[:len(b)-1], b[:3], []byte("\x02\x00\x00\x00p9")} {
		_, err := DecodePolicy(bad)
		assert.ErrorIs(t, err, ErrUnexpectedReply, "%q", bad)
	}
}

// TestPolicyPollStep: a handed-out message's step carries its policy, and
// only its own: one without policy in the same queue has none.
func TestPolicyPollStep(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		p := Policy{MaxAttempts: 3, Timeout: time.Second}
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "a", Policy: p})
		mustEnqueue(t, s, q, "y", &EnqueueMessage{ID: "b"})
		assert.Equal(t, "1", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "policy"))
		r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 2})
		require.NoError(t, err)
		require.Len(t, r.Steps, 2)
		require.NotNil(t, r.Steps[0].Policy)
		assert.Equal(t, p, *r.Steps[0].Policy)
		assert.Nil(t, r.Steps[1].Policy)
	})
}

// TestPolicyQuarantineKeepsWindow: a message with a dedupe window buried
// by quarantine (its handlers' processes died) keeps the window, as a
// burial by its handler's outcome does.
func TestPolicyQuarantineKeepsWindow(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: mid, Policy: Policy{UniqueFor: time.Hour}})
		args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1, QuarantineAfter: 1}
		r, err := poll(ctx, s, q, args)
		require.NoError(t, err)
		require.Equal(t, StepHandle, r.Steps[0].Kind)
		// As if its handler's process died.
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Locks), mid, s.Now(t)-1).Err())
		zaddMid(t, s, q, keys.Due, s.Now(t)-1)
		r, err = poll(ctx, s, q, args)
		require.NoError(t, err)
		assert.Equal(t, Step{Kind: StepSkip, Reason: "quarantined"}, r.Steps[0])
		assert.Equal(t, "done-with-backoff", statusOf(t, s, q, mid), "in its window")
		d, ok, err := DeadLetter(ctx, s.RDB, s.Keys(q), mid)
		require.NoError(t, err)
		require.True(t, ok)
		require.NotNil(t, d.Policy)
		assert.Equal(t, time.Hour, d.Policy.UniqueFor)
		code, err := enqueue(ctx, s, q, "x", &EnqueueMessage{ID: mid, Policy: Policy{UniqueFor: time.Hour}})
		require.NoError(t, err)
		assert.Equal(t, DuplicateBackoff, code)
	})
}

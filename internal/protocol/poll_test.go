package protocol

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParsePollReply: an answer the worker does not expect is an error
// (which the worker logs and backs off on), never a panic.
func TestParsePollReply(t *testing.T) {
	bad := [][]any{
		nil,
		{int64(0)},
		{int64(0), "not a list"},
		{int64(0), []any{}, "not a step"},
		{int64(0), []any{}, []any{}},
		{int64(0), []any{}, []any{"dance"}},
		{int64(0), []any{}, []any{"sleep", int64(1)}},
		{int64(0), []any{}, []any{"sleep", "x", "a", int64(1), int64(0)}},
		{int64(0), []any{}, []any{"sleep", int64(1), "a", int64(1)}},
		{int64(0), []any{}, []any{"skip"}},
		{int64(0), []any{}, []any{"handle", "m", "data", int64(1)}},
		{int64(0), []any{}, []any{"handle", "m", "data", "1", int64(1), int64(2), int64(3), int64(4), "", int64(5)}},
		{int64(0), []any{}, []any{"handle", "m", "data", int64(1), int64(1), int64(2), int64(3), int64(4), ""}},
		{int64(0), []any{}, []any{"handle", "m", "data", int64(1), int64(1), int64(2), int64(3), int64(4), "", "5"}},
	}
	for _, raw := range bad {
		_, err := parsePollReply(raw)
		assert.ErrorIs(t, err, ErrUnexpectedReply, "%v", raw)
	}
	r, err := parsePollReply([]any{int64(7), []any{"ok", "lock-lost"},
		[]any{"handle", "m", "data", int64(2), int64(1000), int64(5), int64(9000), int64(8000), "meta", int64(6)},
		[]any{"skip", "did-gc"},
		[]any{"sleep", int64(500), "b", int64(3), int64(1)}})
	require.NoError(t, err)
	assert.Equal(t, int64(7), r.QueueSize)
	assert.Equal(t, []bool{true, false}, r.Recorded)
	require.Len(t, r.Steps, 3)
	assert.Equal(t, Step{Kind: StepHandle, ID: "m", Data: []byte("data"), Attempt: 2,
		LockTime: 1000 * 1e6, FirstEnqueued: 5, LockedUntil: 9000, Now: 8000, Metadata: []byte("meta"), Due: 6}, r.Steps[0])
	assert.Equal(t, "did-gc", r.Steps[1].Reason)
	assert.Equal(t, "b", r.Steps[2].SleepList)
	assert.True(t, r.Steps[2].UntilDue)
}

package mq

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
		{int64(0), []any{}, []any{"sleep", "x", "a", int64(1)}},
		{int64(0), []any{}, []any{"skip"}},
		{int64(0), []any{}, []any{"handle", "m", "data", int64(1)}},
		{int64(0), []any{}, []any{"handle", "m", "data", "1", int64(1), int64(2), int64(3), int64(4)}},
	}
	for _, raw := range bad {
		_, err := parsePollReply(raw)
		assert.ErrorIs(t, err, errUnexpectedReply, "%v", raw)
	}
	r, err := parsePollReply([]any{int64(7), []any{"ok", "lock-lost"},
		[]any{"handle", "m", "data", int64(2), int64(1000), int64(5), int64(9000), int64(8000)},
		[]any{"skip", "did-gc"},
		[]any{"sleep", int64(500), "b", int64(3)}})
	require.NoError(t, err)
	assert.Equal(t, int64(7), r.queueSize)
	assert.Equal(t, []bool{true, false}, r.recorded)
	require.Len(t, r.steps, 3)
	assert.Equal(t, pollStep{kind: stepHandle, id: "m", data: []byte("data"), attempt: 2,
		lockTime: 1000 * 1e6, firstEnqueued: 5, lockedUntil: 9000, now: 8000}, r.steps[0])
	assert.Equal(t, "did-gc", r.steps[1].reason)
	assert.Equal(t, "b", r.steps[2].sleepList)
}

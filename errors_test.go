package mq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replyError is an error reply of Redis, as go-redis returns them.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestEnqueueResultMapsCodes: each answer of the enqueue script maps to
// its action or refusal, and an unknown one to ErrUnexpectedReply.
func TestEnqueueResultMapsCodes(t *testing.T) {
	for code, want := range map[protocol.Code]EnqueueResult{
		protocol.Added:         {MessageID: "m", Action: ActionAdded},
		protocol.Updated:       {MessageID: "m", Action: ActionUpdated},
		protocol.AlreadyQueued: {MessageID: "m", Refused: ErrAlreadyQueued},
		protocol.Locked:        {MessageID: "m", Refused: ErrLocked},
		protocol.Backoff:       {MessageID: "m", Refused: ErrBackoff},
	} {
		got, err := enqueueResult("m", code)
		require.NoError(t, err, code)
		assert.Equal(t, want, got, code)
		assert.Equal(t, want.Refused == nil, got.OK(), code)
	}
	_, err := enqueueResult("m", "dance")
	assert.ErrorIs(t, err, ErrUnexpectedReply)
	assert.ErrorIs(t, err, protocol.ErrUnexpectedReply)
	assert.Contains(t, err.Error(), `"dance"`)
}

// TestRedisErrorMaps: an OOM refusal wraps ErrRedisFull, a protocol error
// of an unknown reply ErrUnexpectedReply, and others stay as they are.
func TestRedisErrorMaps(t *testing.T) {
	assert.NoError(t, redisError(nil))
	oom := replyError("OOM command not allowed when used memory > 'maxmemory'.")
	assert.ErrorIs(t, redisError(oom), ErrRedisFull)
	assert.ErrorIs(t, redisError(fmt.Errorf("wrapped: %w", oom)), ErrRedisFull)
	assert.NotErrorIs(t, redisError(replyError("OOMISH no")), ErrRedisFull)

	bad := fmt.Errorf("%w: poll step x", protocol.ErrUnexpectedReply)
	got := redisError(bad)
	assert.ErrorIs(t, got, ErrUnexpectedReply)
	assert.ErrorIs(t, got, protocol.ErrUnexpectedReply)
	assert.Equal(t, "mq: unexpected reply from Redis: poll step x", got.Error())
	assert.Equal(t, got, redisError(got), "mapped once")

	other := errors.New("dial tcp: refused")
	assert.Equal(t, other, redisError(other))
	assert.ErrorIs(t, renewResult(protocol.NoToken), ErrLockLost)
	assert.NoError(t, renewResult(12345))
}

// TestTransientRedisError: what WaitResult waits out (docs: a Redis out of
// reach for now) against what it answers at once.
func TestTransientRedisError(t *testing.T) {
	ctx := context.Background()
	// a port nothing listens on: a real refused connection, as go-redis
	// reports it
	r := redistest.Start(t)
	addr := r.Addr
	r.Kill(t)
	down := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer down.Close()
	refused := down.Ping(ctx).Err()
	require.Error(t, refused)
	assert.True(t, transientRedisError(fmt.Errorf("mq: result: %w", refused)), "refused: %v", refused)
	assert.True(t, transientRedisError(replyError("LOADING Redis is loading the dataset in memory")))
	assert.True(t, transientRedisError(io.EOF))
	assert.False(t, transientRedisError(nil))
	assert.False(t, transientRedisError(ErrNoResult))
	assert.False(t, transientRedisError(ErrResultPending))
	assert.False(t, transientRedisError(replyError("NOPERM this user has no permissions to run the 'evalsha' command")))
}

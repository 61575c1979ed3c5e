package protocol

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The shared clusters stop before goleak looks for leaked goroutines.
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// The servers a test runs the scripts on, and the helpers that wait, are
// internal/queuetest's: written once for this package and package mq.

// randomToken is a call token or poller id, as the client draws them.
func randomToken() string { return strconv.FormatUint(rand.Uint64()|1<<63, 16) }

// enqueue enqueues one message with data (formatted with %v) in a call of
// its own, as the client's Enqueue does; m may be nil for a random id.
func enqueue(ctx context.Context, s *queuetest.Server, q string, data any, m *EnqueueMessage) (Code, error) {
	msg := EnqueueMessage{ID: randomToken()}
	if m != nil {
		msg = *m
	}
	msg.Data = []byte(fmt.Sprint(data))
	a := Enqueue(ctx, s.RDB, s.Keys(q), EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, Messages: []EnqueueMessage{msg}})
	if a.Err != nil {
		return "", a.Err
	}
	return a.Codes[0], nil
}

// mustEnqueue is enqueue for a message the queue must take.
func mustEnqueue(t *testing.T, s *queuetest.Server, q string, data any, m *EnqueueMessage) {
	t.Helper()
	code, err := enqueue(context.Background(), s, q, data, m)
	require.NoError(t, err)
	require.Contains(t, []Code{Added, Updated}, code)
}

// poll is one poll call by a poller of its own, lean as a client's first
// call on the queue (§4): the lean key set, or every key once the call
// is refused for want of them.
func poll(ctx context.Context, s *queuetest.Server, q string, a PollArgs) (PollReply, error) {
	a.Poller, a.Seq, a.Confirmed = randomToken(), 1, 0
	a.Lean = new(Lean)
	return Poll(ctx, s.RDB, s.Keys(q), a)
}

// complete records outcomes in one call and answers, per completion,
// whether it took effect.
// complete records outcomes as a worker with the tests' lock time does,
// in a call that takes no steps.
func complete(ctx context.Context, s *queuetest.Server, q string, cs []Completion) ([]bool, error) {
	r, err := poll(ctx, s, q, PollArgs{LockTime: testLockMS * time.Millisecond, Completions: cs})
	return r.Recorded, err
}

// messageStatus is the status name of one message, "" for none.
func messageStatus(ctx context.Context, s *queuetest.Server, q, id string) (string, error) {
	_, infos, err := ReadMessages(ctx, s.RDB, s.Keys(q), "", []string{id})
	if err != nil {
		return "", err
	}
	return infos[0].Status, nil
}

// statusOf is messageStatus that must succeed.
func statusOf(t *testing.T, s *queuetest.Server, q, id string) string {
	t.Helper()
	st, err := messageStatus(context.Background(), s, q, id)
	require.NoError(t, err)
	return st
}

// The status names of docs/protocol.md §2, as the scripts answer them.
const (
	StatusNone              = ""
	StatusQueued            = "queued"
	StatusQueuedWithBackoff = "queued-with-backoff"
	StatusLocked            = "locked"
	StatusLockedWithRequeue = "locked-with-requeue"
	StatusDoneAwaitingGC    = "done-awaiting-gc"
	StatusDoneWithBackoff   = "done-with-backoff"
	StatusDoneWithRequeue   = "done-with-requeue"
)

package mq

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/require"
)

// Helpers that read a queue's keys directly, and make the protocol's
// calls through a Client, for the few tests of the package that need them
// (what the protocol's keys hold is internal/protocol's tests' business).

const mid = "m"

var testSleeps = [5]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond,
	40 * time.Millisecond, 50 * time.Millisecond}

// poll is one poll call by a poller of its own.
func (c *Client) poll(ctx context.Context, queue string, a protocol.PollArgs) (protocol.PollReply, error) {
	a.Poller, a.Seq, a.Confirmed = randomID(), 1, 0
	return c.pollCall(ctx, queue, a)
}

// complete records outcomes in one call and answers, per completion,
// whether it took effect (false: the lock was lost).
func (c *Client) complete(ctx context.Context, queue string, cs []protocol.Completion) ([]bool, error) {
	r, err := c.poll(ctx, queue, protocol.PollArgs{Completions: cs})
	if err != nil {
		return nil, err
	}
	return r.Recorded, nil
}

// onePoll takes one step of q.
func onePoll(t *testing.T, c *Client, q string) protocol.Step {
	t.Helper()
	r, err := c.poll(context.Background(), q, protocol.PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
	require.NoError(t, err)
	require.Len(t, r.Steps, 1)
	return r.Steps[0]
}

// list reads one list of q, whole (queuetest.List).
func list(t *testing.T, s *queuetest.Server, q string, k keys.Index) []string {
	t.Helper()
	return queuetest.List(t, s.RDB, s.Key(q, k))
}

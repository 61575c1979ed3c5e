package mq

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Helpers that read a queue's keys directly, and make the protocol's
// calls through a Client, for the tests of the package. (The protocol's
// own tests are in internal/protocol.)

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

// hget reads one hash field of mid; "" when absent.
func (s *server) hget(t *testing.T, q string, k keys.Index) string {
	t.Helper()
	v, err := s.rdb.HGet(context.Background(), s.key(q, k), mid).Result()
	if err != nil {
		require.ErrorContains(t, err, "redis: nil")
		return ""
	}
	return v
}

// hgetInt reads one hash field of mid as a number; 0 when absent.
func (s *server) hgetInt(t *testing.T, q string, k keys.Index) int64 {
	t.Helper()
	v := s.hget(t, q, k)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	require.NoError(t, err)
	return n
}

func (s *server) isMember(t *testing.T, q string, k keys.Index) bool {
	t.Helper()
	ok, err := s.rdb.SIsMember(context.Background(), s.key(q, k), mid).Result()
	require.NoError(t, err)
	return ok
}

func (s *server) list(t *testing.T, q string, k keys.Index) []string {
	t.Helper()
	l, err := s.rdb.LRange(context.Background(), s.key(q, k), 0, -1).Result()
	require.NoError(t, err)
	return l
}

func (s *server) setList(t *testing.T, q string, k keys.Index, elems ...string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.rdb.Del(ctx, s.key(q, k)).Err())
	if len(elems) > 0 {
		require.NoError(t, s.rdb.RPush(ctx, s.key(q, k), elems).Err())
	}
}

// near asserts that a time in ms is within a few seconds of want.
func near(t *testing.T, want, got int64, what string) {
	t.Helper()
	assert.InDelta(t, want, got, 5000, what)
}

// dumpQueue reads every key of q but the receipts into comparable text,
// times near now reading "NOW" (as internal/protocol's tests do).
func dumpQueue(t *testing.T, s *server, q string, now int64) map[string]string {
	t.Helper()
	ctx := context.Background()
	norm := func(v string) string {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > now-10000 && n < now+10000 {
			return "NOW"
		}
		return v
	}
	out := map[string]string{}
	for i := range keys.Index(keys.Count) {
		switch i {
		case keys.EnqueueReceipts, keys.EnqueueReceiptsPrev, keys.PollReceipts, keys.PollReceiptsPrev:
			continue
		}
		k := s.key(q, i)
		typ, err := s.rdb.Type(ctx, k).Result()
		require.NoError(t, err)
		var text string
		switch typ {
		case "none":
			continue
		case "hash":
			h, err := s.rdb.HGetAll(ctx, k).Result()
			require.NoError(t, err)
			fields := make([]string, 0, len(h))
			for f, v := range h {
				fields = append(fields, f+"="+norm(v))
			}
			slices.Sort(fields)
			text = fmt.Sprint(fields)
		case "set":
			m, err := s.rdb.SMembers(ctx, k).Result()
			require.NoError(t, err)
			slices.Sort(m)
			text = fmt.Sprint(m)
		case "list":
			l, err := s.rdb.LRange(ctx, k, 0, -1).Result()
			require.NoError(t, err)
			text = fmt.Sprint(l)
		case "string":
			v, err := s.rdb.Get(ctx, k).Result()
			require.NoError(t, err)
			text = v
		default:
			t.Fatalf("%s has type %s", k, typ)
		}
		out[keys.Suffixes[i]] = text
	}
	return out
}

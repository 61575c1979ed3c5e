package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueAdministration: docs/protocol.md §10.
func TestQueueAdministration(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()

		// Status: 5 messages; 1 locked, 1 in backoff, 1 done.
		q := "admin:status"
		for i := range 5 {
			_, err := c.Enqueue(ctx, q, i, &EnqueueOptions{MessageID: fmt.Sprint(i)})
			require.NoError(t, err)
		}
		st := onePoll(t, c, q)
		require.Equal(t, protocol.StepHandle, st.Kind)
		st2 := onePoll(t, c, q)
		_, err := c.complete(ctx, q, []protocol.Completion{{ID: st2.ID, LockedUntil: st2.LockedUntil, Outcome: protocol.OutcomeSuccess}})
		require.NoError(t, err)
		_, err = c.Enqueue(ctx, q, "later", &EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour})
		require.NoError(t, err)
		// 5 left: 1 locked, 1 in backoff (the one handled was collected).
		qs, err := c.Inspector().QueueCounts(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{Queued: 3, Locked: 1, Backoff: 1, Total: 5}, qs)
		size, err := c.Inspector().QueueSize(ctx, q)
		require.NoError(t, err)
		assert.Equal(t, int64(3), size)
		empty, err := c.Inspector().QueueCounts(ctx, "admin:none")
		require.NoError(t, err)
		assert.Equal(t, QueueCounts{}, empty)

		// Content.
		require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Messages), "bad", "\xc1").Err()) // never valid MessagePack
		content, err := c.Inspector().QueueContent(ctx, q)
		require.NoError(t, err)
		byID := map[string]MessageInfo{}
		for _, m := range content {
			byID[m.ID] = m
		}
		require.Len(t, byID, 6)
		assert.Equal(t, StatusLocked, byID[st.ID].Status)
		assert.Equal(t, int64(1), byID[st.ID].Attempts)
		assert.NotContains(t, byID, st2.ID, "collected")
		assert.Equal(t, StatusQueuedWithBackoff, byID["later"].Status)
		assert.Greater(t, byID["later"].Backoff, 50*time.Minute)
		assert.Equal(t, "later", byID["later"].Value)
		assert.EqualValues(t, 4, byID["4"].Value)
		assert.GreaterOrEqual(t, byID["4"].Age, time.Duration(0))
		assert.ErrorIs(t, byID["bad"].DecodeErr, ErrDecode, "undecodable, still listed")
		assert.Equal(t, []byte("\xc1"), byID["bad"].Data)

		// Names and clearing.
		for _, name := range []string{"admin:a1", "admin:a2", "other:b1"} {
			_, err := c.Enqueue(ctx, name, "x", nil)
			require.NoError(t, err)
		}
		names, err := c.Inspector().QueueNames(ctx, "admin:a*")
		require.NoError(t, err)
		assert.Equal(t, []string{"admin:a1", "admin:a2"}, names)
		all, err := c.Inspector().QueueNames(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"admin:a1", "admin:a2", "admin:status", "other:b1"}, all)

		cleared, err := c.Inspector().ClearQueues(ctx, "admin:a1", "admin:none")
		require.NoError(t, err)
		assert.Equal(t, []string{"admin:a1"}, cleared, "only queues that held anything")
		n, err := s.RDB.Exists(ctx, keys.All("admin:a1", s.Cluster)...).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "every key gone")
		size, err = c.Inspector().QueueSize(ctx, "admin:a2")
		require.NoError(t, err)
		assert.Equal(t, int64(1), size, "others untouched")

		cleared, err = c.Inspector().ClearAllQueues(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"admin:a2", "admin:status", "other:b1"}, cleared)
		assert.Zero(t, s.RDB.DBSize(ctx).Val(), "nothing left")
	})
}

// TestBadInput: bad input is refused with a sentinel error and writes
// nothing.
func TestBadInput(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, &Config{MaxMessageSize: 16})
		ctx := context.Background()
		badNames := []string{"", "a*", "a?", "a[", "a]", "a{", "a}", `a\b`, "a\nb", "a\x00", strings.Repeat("q", 1025)}
		for _, name := range badNames {
			_, err := c.Enqueue(ctx, name, "x", nil)
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.EnqueueMany(ctx, name, EnqueueRequest{Message: "x"})
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.Inspector().MessageStatus(ctx, name, "m")
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.Inspector().QueueCounts(ctx, name)
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.Inspector().QueueContent(ctx, name)
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.Inspector().ClearQueues(ctx, "fine", name)
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
			_, err = c.NewWorker(name, &WorkerConfig{Handler: nopHandler})
			assert.ErrorIs(t, err, ErrInvalidQueueName, "%q", name)
		}
		require.NoError(t, ValidateQueueName(strings.Repeat("q", 1024)), "1 KiB is fine")
		require.NoError(t, ValidateQueueName("users:email.v2"), "colons and dots are fine")

		for _, id := range []string{"", protocol.EndOfCircle} {
			_, err := c.Inspector().MessageStatus(ctx, "q", id)
			assert.ErrorIs(t, err, ErrInvalidMessageID, "%q", id)
		}
		_, err := c.Enqueue(ctx, "q", "x", &EnqueueOptions{MessageID: protocol.EndOfCircle})
		assert.ErrorIs(t, err, ErrInvalidMessageID)
		_, err = c.Enqueue(ctx, "q", "x", &EnqueueOptions{MessageID: strings.Repeat("m", 1025)})
		assert.ErrorIs(t, err, ErrInvalidMessageID)

		_, err = c.Enqueue(ctx, "q", Raw(make([]byte, 17)), nil)
		assert.ErrorIs(t, err, ErrMessageTooLarge)
		_, err = c.Enqueue(ctx, "q", strings.Repeat("x", 20), nil)
		assert.ErrorIs(t, err, ErrMessageTooLarge, "the encoded size counts")
		_, err = c.Enqueue(ctx, "q", "x", &EnqueueOptions{InitialBackoff: -time.Second})
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = c.Enqueue(ctx, "q", "x", &EnqueueOptions{LockTime: -time.Second})
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = c.Enqueue(ctx, "q", make(chan int), nil)
		assert.ErrorContains(t, err, "cannot encode")

		res, err := c.EnqueueMany(ctx, "q",
			EnqueueRequest{Message: "fine"},
			EnqueueRequest{Message: "fine", Options: &EnqueueOptions{LockTime: -1}},
			EnqueueRequest{Message: "fine"})
		assert.ErrorIs(t, err, ErrInvalidOption)
		assert.ErrorContains(t, err, "message 1")
		assert.Nil(t, res)

		_, err = New(s.RDB, &Config{MaxMessageSize: -1})
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = New(s.RDB, &Config{MaxMessageSize: DefaultMaxMessageSize + 1})
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = New(nil, nil)
		assert.ErrorIs(t, err, ErrInvalidOption)
		_, err = c.NewWorker("q", nil)
		assert.ErrorIs(t, err, ErrInvalidOption, "no handler")
		for _, cfg := range []WorkerConfig{{LockTime: -1}, {LockTime: time.Microsecond}, {WorkerThreads: -1}, {HandlerThreads: -2}} {
			cfg.Handler = nopHandler
			_, err = c.NewWorker("q", &cfg)
			assert.ErrorIs(t, err, ErrInvalidOption, "%+v", cfg)
		}

		assert.Zero(t, s.RDB.DBSize(ctx).Val(), "Redis holds no key")
	})
}

// TestScriptCacheLoss: a flushed script cache changes nothing for the
// caller; on real Redis, neither does a restarted server.
func TestScriptCacheLoss(t *testing.T) {
	exercise := func(t *testing.T, c *Client, q string) {
		ctx := context.Background()
		res, err := c.Enqueue(ctx, q, "x", nil)
		require.NoError(t, err)
		require.True(t, res.OK())
		status, err := c.Inspector().MessageStatus(ctx, q, res.MessageID)
		require.NoError(t, err)
		require.Equal(t, StatusQueued, status)
		many, err := c.EnqueueMany(ctx, q, EnqueueRequest{Message: "a"}, EnqueueRequest{Message: "b"})
		require.NoError(t, err)
		require.Len(t, many, 2)
		r, err := c.poll(ctx, q, protocol.PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
		require.NoError(t, err)
		require.Equal(t, protocol.StepHandle, r.Steps[0].Kind)
		ok, err := c.complete(ctx, q, []protocol.Completion{{ID: r.Steps[0].ID, LockedUntil: r.Steps[0].LockedUntil, Outcome: protocol.OutcomeSuccess}})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, ok)
	}
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		ctx := context.Background()
		exercise(t, c, "before")
		require.NoError(t, s.RDB.ScriptFlush(ctx).Err())
		exercise(t, c, "after-flush")
		if s.Real == nil {
			return
		}
		s.Real.Kill(t)
		s.Real.Restart(t)
		queuetest.WaitFor(t, "the client to reconnect", func() bool { return s.RDB.Ping(ctx).Err() == nil })
		exercise(t, c, "after-restart")
	})
}

// TestRedisDown: calls while Redis is unreachable fail with an error, not
// a panic or a false answer.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	// A client that fails fast once Redis is gone: one dial, no retries,
	// so each call below fails at once instead of after go-redis's
	// retries and their backoff (seconds in all).
	s.RDB = redis.NewClient(&redis.Options{Addr: s.Real.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = s.RDB.Close() })
	c := newClient(t, s, nil)
	require.NoError(t, s.RDB.Ping(context.Background()).Err(), "the client works before the kill")
	s.Real.Kill(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Enqueue(ctx, "q", "x", nil)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrAlreadyQueued))
	_, err = c.EnqueueMany(ctx, "q", EnqueueRequest{Message: "x"})
	require.Error(t, err)
	_, err = c.Inspector().MessageStatus(ctx, "q", "m")
	require.Error(t, err)
	_, err = c.Inspector().QueueNames(ctx, "*")
	require.Error(t, err)
}

// TestQueueNamesRealQueuesOnly: QueueNames and ClearAllQueues find the
// queues of the client's own key layout and nothing else. A queue of the
// other layout, and keys of other applications that merely look like a
// messages key, are neither listed nor deleted.
func TestQueueNamesRealQueuesOnly(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		own := []string{"jobs", "a:b:c", "mail:v2:messages"}
		for _, q := range own {
			_, err := c.Enqueue(ctx, q, "x", nil)
			require.NoError(t, err)
		}
		// A queue of nothing but a dead letter, and one paused and empty.
		require.NoError(t, s.RDB.ZAdd(ctx, keys.Key("dead-only", s.Cluster, keys.DeadIndex), redis.Z{Score: 1, Member: "m"}).Err())
		_, err := c.Inspector().PauseQueue(ctx, "paused-only")
		require.NoError(t, err)

		// A queue of the other layout. A plain-layout client cannot run on
		// a cluster, so there its keys are written one by one.
		var other *Client
		if s.Cluster {
			for i, k := range keys.All("theirs", false)[:keys.UDTs+1] {
				require.NoError(t, s.RDB.HSet(ctx, k, "m", i).Err())
			}
		} else {
			var err error
			other, err = New(s.RDB, &Config{Cluster: true, Logger: testLogger(t)})
			require.NoError(t, err)
			_, err = other.Enqueue(ctx, "theirs", "x", nil)
			require.NoError(t, err)
		}

		// Keys of another application, in this client's layout: a string,
		// a hash without the queue's udts, and a hash whose udts is a string.
		lookalikes := map[string]string{
			keys.Key("other", s.Cluster, keys.Messages): "string",
			keys.Key("x", s.Cluster, keys.Messages):     "hash",
			keys.Key("y", s.Cluster, keys.Messages):     "hash",
			keys.Key("y", s.Cluster, keys.UDTs):         "string",
		}
		for k, typ := range lookalikes {
			if typ == "string" {
				require.NoError(t, s.RDB.Set(ctx, k, "not a queue", 0).Err())
			} else {
				require.NoError(t, s.RDB.HSet(ctx, k, "f", "v").Err())
			}
		}
		before := s.RDB.DBSize(ctx).Val()
		keysOf := func(q string, cluster bool) int64 { // one at a time: plain keys span slots
			var n int64
			for _, k := range keys.All(q, cluster) {
				n += s.RDB.Exists(ctx, k).Val()
			}
			return n
		}
		theirsKeys := keysOf("theirs", !s.Cluster)
		require.NotZero(t, theirsKeys)

		names, err := c.Inspector().QueueNames(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"a:b:c", "dead-only", "jobs", "mail:v2:messages", "paused-only"}, names)
		names, err = c.Inspector().QueueNames(ctx, "a:*")
		require.NoError(t, err)
		assert.Equal(t, []string{"a:b:c"}, names)
		if other != nil {
			names, err = other.Inspector().QueueNames(ctx, "")
			require.NoError(t, err)
			assert.Equal(t, []string{"theirs"}, names, "the other layout sees only its own")
		}

		cleared, err := c.Inspector().ClearAllQueues(ctx)
		require.NoError(t, err)
		assert.Equal(t, []string{"a:b:c", "dead-only", "jobs", "mail:v2:messages", "paused-only"}, cleared)
		for _, q := range append(own, "dead-only", "paused-only") {
			assert.Zero(t, keysOf(q, s.Cluster), "queue %q cleared", q)
		}
		assert.Equal(t, theirsKeys, keysOf("theirs", !s.Cluster), "the other layout's queue untouched")
		for k, typ := range lookalikes {
			got, err := s.RDB.Type(ctx, k).Result()
			require.NoError(t, err)
			assert.Equal(t, typ, got, "%s untouched", k)
		}
		var registry int64 // the registry keeps the other layout's queue (§16)
		if other != nil {
			registry = 1
			assert.Equal(t, []string{"{theirs}"}, s.RDB.SMembers(ctx, keys.Registry).Val())
		}
		assert.Equal(t, int64(len(lookalikes))+theirsKeys+registry, s.RDB.DBSize(ctx).Val(),
			"only the queues' keys went (%d keys before)", before)

		if other != nil {
			_, err = c.Enqueue(ctx, "jobs", "x", nil)
			require.NoError(t, err)
			jobsKeys := keysOf("jobs", false)
			cleared, err = other.Inspector().ClearAllQueues(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{"theirs"}, cleared)
			assert.Zero(t, keysOf("theirs", true))
			assert.Equal(t, jobsKeys, keysOf("jobs", false), "the plain layout's queue untouched")
		}
	})
}

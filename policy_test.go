package mq

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPolicyAttemptsAndBackoff: a message's own MaxAttempts and Backoff
// take the place of the worker's; the handler sees them, and the dead
// letter keeps them.
func TestPolicyAttemptsAndBackoff(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		policy := &RetryBackoff{Kind: BackoffFixed, Base: time.Millisecond}
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "p", MaxAttempts: 2, Backoff: policy})
		enqueue(t, c, q, "y", &EnqueueOptions{MessageID: "plain"})

		var mu sync.Mutex
		seen := map[string][]*Message{}
		_, ev := startSubscribed(t, c, q, &WorkerConfig{
			MaxAttempts:       5,
			RetryBackoff:      Constant(time.Millisecond),
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				mu.Lock()
				seen[m.ID] = append(seen[m.ID], m)
				mu.Unlock()
				return errors.New("boom")
			}),
		})
		waitOutcomes(t, ev, map[Outcome]int{OutcomeDead: 2})
		mu.Lock()
		require.Len(t, seen["p"], 2, "its own bound: two attempts")
		assert.Len(t, seen["plain"], 5, "the worker's bound")
		want := &Policy{MaxAttempts: 2, Backoff: policy}
		assert.Equal(t, want, seen["p"][0].Policy)
		assert.Equal(t, 2, seen["p"][0].MaxAttempts)
		assert.Nil(t, seen["plain"][0].Policy)
		assert.Equal(t, 5, seen["plain"][0].MaxAttempts)
		mu.Unlock()

		d, err := c.Inspector().DeadLetter(ctx, q, "p")
		require.NoError(t, err)
		assert.Equal(t, want, d.Policy, "the dead letter keeps the policy")
		d, err = c.Inspector().DeadLetter(ctx, q, "plain")
		require.NoError(t, err)
		assert.Nil(t, d.Policy)
		assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Policy), "p"), "collected with the message")

		require.NoError(t, c.Inspector().RequeueDeadLetter(ctx, q, "p"))
		waitOutcomes(t, ev, map[Outcome]int{OutcomeDead: 1})
		mu.Lock()
		require.Len(t, seen["p"], 4, "its own bound again")
		assert.Equal(t, want, seen["p"][3].Policy, "a requeued dead letter keeps its policy")
		mu.Unlock()
	})
}

// TestPolicyRetryBackoffDelay: the shapes of a message's retry backoff.
func TestPolicyRetryBackoffDelay(t *testing.T) {
	fixed := RetryBackoff{Kind: BackoffFixed, Base: time.Second}
	exp := RetryBackoff{Kind: BackoffExponential, Base: time.Second, Max: 5 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 200: 5 * time.Second} {
		assert.Equal(t, time.Second, fixed.Delay(n))
		assert.Equal(t, want, exp.Delay(n), "attempt %d", n)
	}
	jittered := RetryBackoff{Kind: BackoffFixed, Base: time.Second, Jitter: 0.5}
	for range 100 {
		d := jittered.Delay(1)
		assert.True(t, d >= time.Second/2 && d <= time.Second, "%v", d)
	}
}

// TestPolicyTimeout: a message's Timeout ends its handler's context while
// its lock is renewed, and the handling fails: retried, then buried, by
// the message's own policy.
func TestPolicyTimeout(t *testing.T) {
	t.Parallel()
	// A real Redis alone: the test waits out real lock times and timeouts.
	func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		// The lock time is 2 s and the timeout 3 s: the handler's context
		// outlives its lock only if renewals succeeded, and then ends by
		// the timeout.
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "t", LockTime: 2 * time.Second, Timeout: 3 * time.Second,
			MaxAttempts: 2, Backoff: &RetryBackoff{Kind: BackoffFixed, Base: time.Millisecond}})
		causes := make(chan error, 2)
		w, err := c.NewWorker(q, &WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return nil // too late: a success after the timeout is a failure
			}),
		})
		require.NoError(t, err)
		ev := subscribe(t, w)
		require.NoError(t, w.Start(t.Context()))
		t.Cleanup(func() { _ = w.Close() })

		renewed := 0
		for attempt := 1; attempt <= 2; attempt++ {
			e := waitEvent(t, ev, "the handling to end", func(e Event) bool {
				if e.Kind == EventLockRenewed && e.ID == "t" {
					renewed++
				}
				return e.Kind == EventHandled && e.ID == "t"
			})
			assert.Equal(t, attempt, e.Attempt)
			if attempt == 1 {
				assert.Equal(t, OutcomeFailed, e.Outcome, "failed, to be retried")
			} else {
				assert.Equal(t, OutcomeDead, e.Outcome)
			}
			assert.ErrorIs(t, <-causes, ErrHandlingTimeout)
		}
		assert.Positive(t, renewed, "the lock was renewed meanwhile")
		d, err := c.Inspector().DeadLetter(ctx, q, "t")
		require.NoError(t, err)
		assert.Contains(t, d.Error, ErrHandlingTimeout.Error())
	}(t, queuetest.RealServer(t))
}

// TestPolicyDuplicate: an enqueue with UniqueFor meeting its id queued,
// locked, or in the window after its success or its burial is refused
// with ErrDuplicate, saying what it met.
func TestPolicyDuplicate(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		opts := func(id string) *EnqueueOptions {
			return &EnqueueOptions{MessageID: id, UniqueFor: time.Hour, MaxAttempts: 1}
		}
		met := func(r EnqueueResult) string {
			t.Helper()
			var d *DuplicateError
			require.ErrorAs(t, r.Refused, &d)
			assert.ErrorIs(t, r.Refused, ErrDuplicate)
			return d.Met
		}
		assert.Equal(t, ActionAdded, enqueue(t, c, q, "x", opts("ok")).Action)
		assert.Equal(t, "queued", met(enqueue(t, c, q, "x", opts("ok"))))
		assert.ErrorIs(t, enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "ok"}).Refused, ErrAlreadyQueued,
			"an enqueue without a window answers as before")

		release := make(chan struct{})
		started := make(chan string, 4)
		_, ev := startSubscribed(t, c, q, &WorkerConfig{
			EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				started <- m.ID
				if m.ID == "bad" {
					return errors.New("boom")
				}
				<-release
				return nil
			}),
		})
		assert.Equal(t, "ok", <-started)
		assert.Equal(t, "locked", met(enqueue(t, c, q, "x", opts("ok"))))
		close(release)
		waitHandled(t, ev, "ok", 1)
		assert.Equal(t, StatusDoneWithBackoff, statusOf(t, c, q, "ok"))
		assert.Equal(t, "backoff", met(enqueue(t, c, q, "x", opts("ok"))))

		enqueue(t, c, q, "x", opts("bad"))
		assert.Equal(t, OutcomeDead, waitHandled(t, ev, "bad", 1))
		assert.Equal(t, "backoff", met(enqueue(t, c, q, "x", opts("bad"))), "a dead letter keeps its window")
		info, err := c.Inspector().Message(ctx, q, "bad")
		require.NoError(t, err)
		require.NotNil(t, info.DeadLetter)
		assert.Equal(t, time.Hour, info.Policy.UniqueFor)
		assert.Equal(t, time.Hour, info.DeadLetter.Policy.UniqueFor)
		assert.Equal(t, "bad", <-started)
		assert.Len(t, started, 0, "each handled once")
	})
}

// TestPolicyDuplicateMany: EnqueueMany answers duplicates message by
// message, a repeat within one call included.
func TestPolicyDuplicateMany(t *testing.T) {
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	req := EnqueueRequest{Message: "x", Options: &EnqueueOptions{MessageID: "a", UniqueFor: time.Minute}}
	res, err := c.EnqueueMany(context.Background(), "q", req, req)
	require.NoError(t, err)
	assert.True(t, res[0].OK())
	assert.ErrorIs(t, res[1].Refused, ErrDuplicate)
}

// TestPolicyInvalid: bad policy options are refused before anything is
// written.
func TestPolicyInvalid(t *testing.T) {
	s := queuetest.MiniServer(t)
	c := newClient(t, s, nil)
	for name, o := range map[string]*EnqueueOptions{
		"window without id":   {UniqueFor: time.Minute},
		"requeue with policy": {MessageID: "a", MaxAttempts: 3, CanRequeue: true},
		"negative timeout":    {MessageID: "a", Timeout: -time.Second},
		"negative window":     {MessageID: "a", UniqueFor: -time.Second},
		"unknown backoff":     {MessageID: "a", Backoff: &RetryBackoff{Kind: "linear", Base: time.Second}},
		"jitter above one":    {MessageID: "a", Backoff: &RetryBackoff{Kind: BackoffFixed, Jitter: 2}},
	} {
		_, err := c.Enqueue(context.Background(), "q", "x", o)
		assert.ErrorIs(t, err, ErrInvalidOption, name)
	}
	n, err := s.RDB.Exists(context.Background(), s.Key("q", keys.Messages)).Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestPolicyStale: a policy a Carmine worker's collection left behind
// (it deletes its own keys' entries alone) is not read as that of a later
// message of the same id, which a plain enqueue adds on the lean path;
// an update without policy deletes the message's policy.
func TestPolicyStale(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "a", MaxAttempts: 3})
		info, err := c.Inspector().Message(ctx, q, "a")
		require.NoError(t, err)
		require.NotNil(t, info.Policy)
		udt, err := strconv.ParseInt(queuetest.HGet(t, s.RDB, s.Key(q, keys.UDTs), "a"), 10, 64)
		require.NoError(t, err)
		// A Carmine worker's collection, as its protocol writes it.
		for _, i := range []keys.Index{keys.Messages, keys.UDTs, keys.NAttempts, keys.LockTimes} {
			require.NoError(t, s.RDB.HDel(ctx, s.Key(q, i), "a").Err())
		}
		require.NotEmpty(t, queuetest.HGet(t, s.RDB, s.Key(q, keys.Policy), "a"), "left behind")
		// The next message of the id is first enqueued at a later
		// millisecond of the server's clock, which the tag tells apart.
		// (miniredis's FastForward moves TTLs, not TIME: the two enqueues
		// could share a millisecond, and the entry read as current.)
		queuetest.WaitFor(t, "the server's clock past the first enqueue", func() bool { return s.Now(t) > udt })
		enqueue(t, c, q, "y", &EnqueueOptions{MessageID: "a"})
		info, err = c.Inspector().Message(ctx, q, "a")
		require.NoError(t, err)
		assert.Nil(t, info.Policy, "stale")

		got := make(chan *Message, 1)
		startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
			Handler: HandlerFunc(func(ctx context.Context, m *Message) error { got <- m; return nil })})
		m := <-got
		assert.Nil(t, m.Policy)
		assert.Equal(t, DefaultMaxAttempts, m.MaxAttempts)

		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "b", UniqueFor: time.Hour, InitialBackoff: time.Hour})
		info, err = c.Inspector().Message(ctx, q, "b")
		require.NoError(t, err)
		assert.Equal(t, time.Hour, info.Policy.UniqueFor)
		existed, err := c.Inspector().DeleteMessage(ctx, q, "b")
		require.NoError(t, err)
		assert.True(t, existed)
		assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Policy), "b"), "deleted with the message")

		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d", MaxAttempts: 3, InitialBackoff: time.Hour})
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "d", CanUpdate: true})
		info, err = c.Inspector().Message(ctx, q, "d")
		require.NoError(t, err)
		assert.Nil(t, info.Policy, "an update without policy deletes it")
	})
}

// TestPolicyPlainQueueReadsNoPolicy: a queue that never used a policy is
// enqueued to, polled and collected without any command naming the
// policy key, nor the priority keys (§18) (a real Redis's MONITOR sees every command a script runs).
func TestPolicyPlainQueueReadsNoPolicy(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx := context.Background()
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	policyKey := s.Key(q, keys.Policy)

	// MONITOR on a connection of its own, read line by line.
	conn, err := net.Dial("tcp", s.Real.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = conn.Write([]byte("MONITOR\r\n"))
	require.NoError(t, err)
	var mu sync.Mutex
	var seen []string
	go func() {
		r := bufio.NewScanner(conn)
		r.Buffer(nil, 1<<20)
		for r.Scan() {
			mu.Lock()
			seen = append(seen, r.Text())
			mu.Unlock()
		}
	}()

	for _, id := range []string{"a", "b", "c"} {
		enqueue(t, c, q, "x", &EnqueueOptions{MessageID: id})
	}
	_, ev := startSubscribed(t, c, q, &WorkerConfig{EndOfQueueBackoff: Constant(20 * time.Millisecond),
		MaxAttempts: 1, Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if m.ID == "c" {
				return errors.New("buried")
			}
			return nil
		})})
	waitOutcomes(t, ev, map[Outcome]int{OutcomeSucceeded: 2, OutcomeDead: 1})
	_, err = c.Inspector().Message(ctx, q, "c")
	require.NoError(t, err)
	// The monitor saw our own last command once it saw a marker after it.
	marker := "policy-test-marker-" + q
	queuetest.WaitFor(t, "the monitor to catch up", func() bool {
		s.RDB.Echo(ctx, marker)
		mu.Lock()
		defer mu.Unlock()
		for _, cmd := range seen {
			if strings.Contains(cmd, marker) {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	sawScripts := false
	for _, cmd := range seen {
		if !strings.Contains(cmd, "lua]") {
			continue // a script call passes every key; what it runs counts
		}
		assert.NotContains(t, cmd, policyKey+`"`, "a plain queue's scripts name no policy key")
		for _, k := range []keys.Index{keys.PrioHi, keys.PrioLo, keys.Prio} {
			// (§18) nor any priority key
			assert.NotContains(t, cmd, s.Key(q, k)+`"`, "a plain queue's scripts name no priority key")
		}
		sawScripts = sawScripts || strings.Contains(cmd, "hsetnx")
	}
	assert.True(t, sawScripts, "the monitor saw the scripts' commands")
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// upperWorker starts a worker of q whose handler answers each string
// message with its upper case as the result, and "fail" with a final
// failure, "plain" with a success without a result.
func upperWorker(t *testing.T, c *Client, q string) *Worker {
	t.Helper()
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			var s string
			if err := m.Decode(&s); err != nil {
				return err
			}
			switch s {
			case "fail":
				require.NoError(t, m.SetResult("not kept"))
				return Final(errors.New("failed"))
			case "plain":
				return nil
			}
			return m.SetResult(strings.ToUpper(s))
		}),
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func enqueueID(t *testing.T, c *Client, q, id string, msg any) {
	t.Helper()
	res, err := c.Enqueue(context.Background(), q, msg, &EnqueueOptions{MessageID: id})
	require.NoError(t, err)
	require.True(t, res.OK(), "%v", res.Refused)
}

// TestWaitResult: request and reply, on each kind of server (Cluster
// included), from a client of its own: a result the handler set; a
// message that finished without one or became a dead letter answers
// ErrNoResult, as does one never enqueued; the reading side decodes with
// its codec.
func TestWaitResult(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q := queuetest.QueueName(t)
		worker := resultClient(t, s)
		asker := resultClient(t, s)

		_, err := asker.WaitResult(ctx, q, "never")
		require.ErrorIs(t, err, ErrNoResult)

		type answer struct {
			r   Result
			err error
		}
		waits := map[string]chan answer{}
		for _, id := range []string{"a", "fail", "plain"} {
			enqueueID(t, asker, q, id, id)
			ch := make(chan answer, 1)
			waits[id] = ch
			go func() {
				r, err := asker.WaitResult(ctx, q, id)
				ch <- answer{r, err}
			}()
		}
		upperWorker(t, worker, q)

		a := <-waits["a"]
		require.NoError(t, a.err)
		var got string
		require.NoError(t, a.r.Decode(&got))
		assert.Equal(t, "A", got)
		assert.Equal(t, "a", a.r.ID)
		assert.False(t, a.r.At.IsZero())
		for _, id := range []string{"fail", "plain"} {
			assert.ErrorIs(t, (<-waits[id]).err, ErrNoResult, id)
		}

		r, err := asker.Inspector().Result(ctx, q, "a")
		require.NoError(t, err)
		assert.Equal(t, a.r.Data, r.Data)
		assert.Equal(t, a.r.At, r.At)
	})
}

// TestWaitResultThere: a wait that starts after the result was recorded
// answers it at once, without a worker running.
func TestWaitResultThere(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q := queuetest.QueueName(t)
		c := resultClient(t, s)
		enqueueID(t, c, q, "a", "hello")
		w := upperWorker(t, c, q)
		queuetest.WaitFor(t, "the result", func() bool {
			_, err := c.Inspector().Result(ctx, q, "a")
			return err == nil
		})
		require.NoError(t, w.Stop(ctx))
		r, err := c.WaitResult(ctx, q, "a")
		require.NoError(t, err)
		var got string
		require.NoError(t, r.Decode(&got))
		assert.Equal(t, "HELLO", got)
	})
}

// TestWaitResultDeadline: a wait for a message no worker handles ends
// with ctx, its error wrapping ctx's; Inspector.Result answers pending.
func TestWaitResultDeadline(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		c := resultClient(t, s)
		enqueueID(t, c, q, "a", "hello")
		_, err := c.Inspector().Result(context.Background(), q, "a")
		assert.ErrorIs(t, err, ErrResultPending)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = c.WaitResult(ctx, q, "a")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrResultPending)
	})
}

// TestResultTyped: a HandleTypedResult handler's return value is the
// result; an answer other than success drops it.
func TestResultTyped(t *testing.T) {
	s := queuetest.MiniServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := queuetest.QueueName(t)
	c := resultClient(t, s)
	type sum struct{ A, B int }
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandleTypedResult(func(ctx context.Context, m *Message, v sum) (int, error) {
			if v.A < 0 {
				return -1, Final(errors.New("negative"))
			}
			return v.A + v.B, SucceedWithBackoff(time.Minute)
		}),
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	enqueueID(t, c, q, "ok", sum{2, 3})
	enqueueID(t, c, q, "bad", sum{-1, 3})
	r, err := c.WaitResult(ctx, q, "ok")
	require.NoError(t, err)
	var n int
	require.NoError(t, r.Decode(&n))
	assert.Equal(t, 5, n)
	_, err = c.WaitResult(ctx, q, "bad")
	assert.ErrorIs(t, err, ErrNoResult)
}

// TestResultsCleared: ClearQueues and DeleteMessage remove results.
func TestResultsCleared(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := queuetest.QueueName(t)
	c := resultClient(t, s)
	enqueueID(t, c, q, "a", "a")
	enqueueID(t, c, q, "b", "b")
	upperWorker(t, c, q)
	for _, id := range []string{"a", "b"} {
		_, err := c.WaitResult(ctx, q, id)
		require.NoError(t, err)
	}
	_, err := c.Inspector().DeleteMessage(ctx, q, "a")
	require.NoError(t, err)
	_, err = c.Inspector().Result(ctx, q, "a")
	assert.ErrorIs(t, err, ErrNoResult)
	_, err = c.Inspector().ClearQueues(ctx, q)
	require.NoError(t, err)
	for _, k := range []keys.Index{keys.Results, keys.ResultsIndex} {
		n, err := s.RDB.Exists(ctx, c.key(q, k)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, keys.Suffixes[k])
	}
}

// TestWaitResultNoneEver: on a queue whose handlers never gave a result,
// a wait ends with ErrNoResult once the message is handled: the wait
// marked the queue as using results, so its outcome was published.
func TestWaitResultNoneEver(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := queuetest.QueueName(t)
	c := resultClient(t, s)
	enqueueID(t, c, q, "p", "plain")
	waited := make(chan error, 1)
	go func() {
		_, err := c.WaitResult(ctx, q, "p")
		waited <- err
	}()
	queuetest.WaitFor(t, "the wait to mark the queue", func() bool {
		n, err := s.RDB.HExists(ctx, c.key(q, keys.Features), "results").Result()
		return err == nil && n
	})
	upperWorker(t, c, q)
	assert.ErrorIs(t, <-waited, ErrNoResult)
}

// resultClient is newClient, closed when the test ends: its waits'
// subscription outlives them by a minute otherwise.
func resultClient(t *testing.T, s *queuetest.Server) *Client {
	t.Helper()
	c := newClient(t, s, nil)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pubsubConns counts the connections of s in a subscription.
func pubsubConns(t *testing.T, s *queuetest.Server) int {
	t.Helper()
	list, err := s.RDB.(interface {
		ClientList(context.Context) *redis.StringCmd
	}).ClientList(context.Background()).Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if flags, ok := strings.CutPrefix(f, "flags="); ok && strings.Contains(flags, "P") {
				n++
			}
		}
	}
	return n
}

// TestWaitResultShared: a client's waits share one subscription; a wait
// outlives its connection being killed; Client.Close ends the waits.
func TestWaitResultShared(t *testing.T) {
	s := queuetest.RealServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := queuetest.QueueName(t)
	c := resultClient(t, s)
	const n = 20
	answers := make(chan error, n)
	for i := range n {
		id := fmt.Sprint("m", i)
		enqueueID(t, c, q, id, id)
		go func() {
			_, err := c.WaitResult(ctx, q, id)
			answers <- err
		}()
	}
	queuetest.WaitFor(t, "every wait to join", func() bool {
		c.results.mu.Lock()
		defer c.results.mu.Unlock()
		return c.results.waits == n
	})
	assert.Equal(t, 1, pubsubConns(t, s), "one subscription for every wait")

	// The connection killed: it is made again, the waits go on.
	require.NoError(t, s.RDB.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	upperWorker(t, newClient(t, s, nil), q)
	for range n {
		require.NoError(t, <-answers)
	}

	// Closed, the client ends its waits.
	enqueueID(t, c, "idle-"+q, "x", "x") // a queue no worker handles
	waited := make(chan error, 1)
	other := newClient(t, s, nil)
	go func() {
		_, err := other.WaitResult(ctx, "idle-"+q, "x")
		waited <- err
	}()
	queuetest.WaitFor(t, "the wait to join", func() bool {
		other.results.mu.Lock()
		defer other.results.mu.Unlock()
		return other.results.waits == 1
	})
	require.NoError(t, other.Close())
	assert.ErrorIs(t, <-waited, ErrClientClosed)
}

// TestSetResultTooLarge: a result over Config.MaxMessageSize is refused
// by SetResult, and leaves the result set before.
func TestSetResultTooLarge(t *testing.T) {
	s := queuetest.MiniServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := queuetest.QueueName(t)
	c := newClient(t, s, &Config{MaxMessageSize: 16})
	t.Cleanup(func() { _ = c.Close() })
	refused := make(chan error, 1)
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			require.NoError(t, m.SetResult(Raw("small")))
			refused <- m.SetResult(Raw(strings.Repeat("x", 17)))
			return nil
		}),
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	t.Cleanup(func() { _ = w.Close() })
	enqueueID(t, c, q, "a", "a")
	assert.ErrorIs(t, <-refused, ErrMessageTooLarge)
	r, err := c.WaitResult(ctx, q, "a")
	require.NoError(t, err)
	assert.Equal(t, "small", string(r.Data))
}

package mqprom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var noErrors = map[string]float64{
	`mq_scrape_errors_total{op="queue_names"}`:  0,
	`mq_scrape_errors_total{op="queue_counts"}`: 0,
	`mq_scrape_error`:                           0,
}

// TestQueueCollectorCounts puts known numbers of messages in each state on
// a real redis-server, with a real worker holding the locks, and checks the
// values of one scrape exactly.
func TestQueueCollectorCounts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	ctx := context.Background()

	// orders: 2 done (in their dedupe windows), 3 locked, 4 in backoff,
	// 5 queued, 1 dead letter, paused. Each count differs from the others,
	// so that a state exported from the wrong field shows.
	const q = "orders"
	for i := range 2 {
		enqueue(t, c, q, fmt.Sprint("done-", i), nil)
	}
	for i := range 3 {
		enqueue(t, c, q, fmt.Sprint("lock-", i), nil)
	}
	enqueue(t, c, q, "poison", nil)
	started := make(chan string, 6)
	releaseDone, releaseLocked := make(chan struct{}), make(chan struct{})
	w, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
		HandlerThreads: 6,
		Prefetch:       -1,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			started <- m.ID
			switch {
			case m.ID == "poison":
				return mq.Final(errors.New("cannot be handled"))
			case strings.HasPrefix(m.ID, "done-"):
				<-releaseDone
				// A success with a dedupe window stays done for the hour;
				// a plain success would be collected at once.
				return mq.SucceedWithBackoff(time.Hour)
			default:
				<-releaseLocked
				return nil
			}
		}),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		close(releaseLocked)
		assert.NoError(t, w.Stop(context.Background()))
	})
	for range 6 {
		<-started
	}
	// Paused, the queue's polls record outcomes but take no step, so the
	// handlers that finish take nothing new and the new messages stay
	// queued.
	_, err = c.Inspector().PauseQueue(ctx, q)
	require.NoError(t, err)
	close(releaseDone)
	queuetest.WaitFor(t, "2 successes and a dead letter recorded", func() bool {
		n := w.Stats().Counts
		return n.Succeeded == 2 && n.Dead == 1
	})
	for i := range 4 {
		enqueue(t, c, q, fmt.Sprint("later-", i), &mq.EnqueueOptions{InitialBackoff: time.Hour})
	}
	for i := range 5 {
		enqueue(t, c, q, fmt.Sprint("now-", i), nil)
	}
	// emails: 4 queued, 1 of them high and 2 low.
	enqueue(t, c, "emails", "hello", nil)
	enqueue(t, c, "emails", "urgent", &mq.EnqueueOptions{Priority: mq.PriorityHigh})
	enqueue(t, c, "emails", "digest-1", &mq.EnqueueOptions{Priority: mq.PriorityLow})
	enqueue(t, c, "emails", "digest-2", &mq.EnqueueOptions{Priority: mq.PriorityLow})

	col := NewQueueCollector(c, nil)
	got := gather(t, col)
	emails := queueSamples("emails", 4, 0, 0, 0, 4, 0, false)
	emails[`mq_queue_ready_by_priority{priority="high",queue="emails"}`] = 1
	emails[`mq_queue_ready_by_priority{priority="low",queue="emails"}`] = 2
	want := merge(queueSamples("orders", 5, 3, 4, 2, 14, 1, true), emails, noErrors)
	assert.Equal(t, want, only(got, "mq_queue_", "mq_scrape_error"))
	assert.Contains(t, got, "mq_scrape_duration_seconds")

	problems, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, problems, "metric names and help pass promlint")
}

// TestQueueCollectorConfiguredQueues exports the queues named, each once,
// and counts a queue that cannot be read as a scrape error while the
// others are exported.
func TestQueueCollectorConfiguredQueues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	for _, q := range []string{"a", "b", "c"} {
		enqueue(t, c, q, "m", nil)
	}
	enqueue(t, c, "b", "m2", &mq.EnqueueOptions{InitialBackoff: time.Hour})

	rec := &recorder{}
	col := NewQueueCollector(c, &QueueOptions{Queues: []string{"b", "empty", "b", "bad*name"}, Logger: slog.New(rec)})
	got := only(gather(t, col), "mq_queue_", "mq_scrape_error")
	assert.Equal(t, merge(
		queueSamples("b", 1, 0, 1, 0, 2, 0, false),
		queueSamples("empty", 0, 0, 0, 0, 0, 0, false),
		map[string]float64{
			`mq_scrape_errors_total{op="queue_names"}`:  0,
			`mq_scrape_errors_total{op="queue_counts"}`: 1,
			`mq_scrape_error`:                           1,
			`mq_queue_stale{queue="bad*name"}`:          1, // never read: nothing else to export
		},
	), got)
	errs := rec.errors()
	require.Len(t, errs, 1, "one log line a scrape")
	assert.ErrorIs(t, errs[0], mq.ErrInvalidQueueName)

	got = only(gather(t, col), "mq_scrape_errors_total")
	assert.Equal(t, 2.0, got[`mq_scrape_errors_total{op="queue_counts"}`], "errors add up over scrapes")
}

// TestQueueCollectorRedisDown: with Redis gone, a scrape still succeeds,
// with its errors counted, and each queue's last counts marked stale. (The short Timeout cuts go-redis's dial
// retries short, which take seconds.)
func TestQueueCollectorRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	enqueue(t, c, "a", "m", nil)
	all := NewQueueCollector(c, &QueueOptions{Timeout: 300 * time.Millisecond, Logger: slog.New(&recorder{})})
	named := NewQueueCollector(c, &QueueOptions{Queues: []string{"a", "b"}, Timeout: 300 * time.Millisecond, Logger: slog.New(&recorder{})})
	never := NewQueueCollector(c, &QueueOptions{Queues: []string{"a"}, Timeout: 300 * time.Millisecond, Logger: slog.New(&recorder{})})
	require.Equal(t, merge(queueSamples("a", 1, 0, 0, 0, 1, 0, false), noErrors), only(gather(t, all), "mq_queue_", "mq_scrape_error"))
	require.Equal(t, merge(queueSamples("a", 1, 0, 0, 0, 1, 0, false), queueSamples("b", 0, 0, 0, 0, 0, 0, false), noErrors),
		only(gather(t, named), "mq_queue_", "mq_scrape_error"))

	// With Redis gone, each queue's series go on with the counts last read,
	// marked stale, so that alerts on them do not read "no data".
	srv.Kill(t)
	for _, names := range []float64{1, 2} {
		assert.Equal(t, merge(stale(queueSamples("a", 1, 0, 0, 0, 1, 0, false)), map[string]float64{
			`mq_scrape_errors_total{op="queue_names"}`:  names,
			`mq_scrape_errors_total{op="queue_counts"}`: 0,
			`mq_scrape_error`:                           1,
		}), only(gather(t, all), "mq_queue_", "mq_scrape_error"))
	}
	assert.Equal(t, merge(stale(queueSamples("a", 1, 0, 0, 0, 1, 0, false)), stale(queueSamples("b", 0, 0, 0, 0, 0, 0, false)), map[string]float64{
		`mq_scrape_errors_total{op="queue_names"}`:  0,
		`mq_scrape_errors_total{op="queue_counts"}`: 2,
		`mq_scrape_error`:                           1,
	}), only(gather(t, named), "mq_queue_", "mq_scrape_error"))
	// A queue never read has nothing to export but its staleness.
	assert.Equal(t, map[string]float64{
		`mq_queue_stale{queue="a"}`:                 1,
		`mq_scrape_errors_total{op="queue_names"}`:  0,
		`mq_scrape_errors_total{op="queue_counts"}`: 1,
		`mq_scrape_error`:                           1,
	}, only(gather(t, never), "mq_queue_", "mq_scrape_error"))
}

// TestQueueCollectorDeadline: a frozen Redis holds a scrape no longer than
// its Timeout (the client's own read timeout would answer otherwise, with
// an error of its own).
func TestQueueCollectorDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	enqueue(t, c, "a", "m", nil)
	rec := &recorder{}
	col := NewQueueCollector(c, &QueueOptions{Timeout: 100 * time.Millisecond, Logger: slog.New(rec)})

	srv.Pause(t)
	defer srv.Resume(t)
	got := only(gather(t, col), "mq_queue_", "mq_scrape_error")
	assert.Equal(t, map[string]float64{
		`mq_scrape_errors_total{op="queue_names"}`:  1,
		`mq_scrape_errors_total{op="queue_counts"}`: 0,
		`mq_scrape_error`:                           1,
	}, got)
	errs := rec.errors()
	require.Len(t, errs, 1)
	assert.True(t, errors.Is(errs[0], context.DeadlineExceeded), "the scrape's deadline ended the read: %v", errs[0])
}

// TestQueueCollectorCluster finds and reads the queues of every master of
// a Redis Cluster.
func TestQueueCollectorCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.SharedCluster(t)
	c := newClient(t, cl.Client(t), true)
	var want []map[string]float64
	for i := range 6 {
		q := fmt.Sprint("spread:", i)
		for j := range i + 1 {
			enqueue(t, c, q, fmt.Sprint(j), nil)
		}
		want = append(want, queueSamples(q, i+1, 0, 0, 0, i+1, 0, false))
	}
	want = append(want, noErrors)
	assert.Equal(t, merge(want...), only(gather(t, NewQueueCollector(c, nil)), "mq_queue_", "mq_scrape_error"))
}

// TestQueueCollectorRemembersQueues: Inspector.QueueNames lists every
// queue until it is cleared (the queue registry, docs/protocol.md §16),
// emptied or not, so the series of a queue whose messages were all handled
// or died go on, at their counts. The collector keeps reading a queue it
// has listed until a read finds nothing in it (no message, no dead letter,
// no pause): a queue cleared after a read found something in it exports
// its zeros once before its series end.
func TestQueueCollectorRemembersQueues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	ctx := context.Background()
	enqueue(t, c, "poisoned", "poison", nil)
	enqueue(t, c, "fine", "m", nil)
	col := NewQueueCollector(c, nil)
	require.Equal(t, merge(
		queueSamples("poisoned", 1, 0, 0, 0, 1, 0, false),
		queueSamples("fine", 1, 0, 0, 0, 1, 0, false),
		noErrors,
	), only(gather(t, col), "mq_queue_", "mq_scrape_error"))

	for _, q := range []string{"poisoned", "fine"} {
		w, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
			Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
				if m.ID == "poison" {
					return mq.Final(errors.New("cannot be handled"))
				}
				return nil
			}),
		})
		require.NoError(t, err)
		queuetest.WaitFor(t, "the message handled", func() bool {
			n := w.Stats().Counts
			return n.Succeeded+n.Dead == 1
		})
		require.NoError(t, w.Stop(ctx))
	}
	names, err := c.Inspector().QueueNames(ctx, "*")
	require.NoError(t, err)
	require.Equal(t, []string{"fine", "poisoned"}, names, "the premise: an emptied queue is listed until cleared")

	// fine is empty and listed: its zeros go on.
	for range 2 {
		assert.Equal(t, merge(
			queueSamples("poisoned", 0, 0, 0, 0, 0, 1, false),
			queueSamples("fine", 0, 0, 0, 0, 0, 0, false),
			noErrors,
		), only(gather(t, col), "mq_queue_", "mq_scrape_error"))
	}
	// Cleared, it is no longer listed (and, read empty, not remembered).
	_, err = c.Inspector().ClearQueues(ctx, "fine")
	require.NoError(t, err)
	assert.Equal(t, merge(queueSamples("poisoned", 0, 0, 0, 0, 0, 1, false), noErrors),
		only(gather(t, col), "mq_queue_", "mq_scrape_error"))

	_, err = c.Inspector().PauseQueue(ctx, "poisoned")
	require.NoError(t, err)
	n, err := c.Inspector().DeleteDeadLetters(ctx, "poisoned")
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	assert.Equal(t, merge(queueSamples("poisoned", 0, 0, 0, 0, 0, 0, true), noErrors),
		only(gather(t, col), "mq_queue_", "mq_scrape_error"))
	_, err = c.Inspector().ClearQueues(ctx, "poisoned")
	require.NoError(t, err)
	assert.Equal(t, merge(queueSamples("poisoned", 0, 0, 0, 0, 0, 0, false), noErrors),
		only(gather(t, col), "mq_queue_", "mq_scrape_error"))
	assert.Equal(t, noErrors, only(gather(t, col), "mq_queue_", "mq_scrape_error"), "forgotten once read empty")
}

// TestQueueCollectorHandoffs exports the hand-off records waiting in a
// queue for a relay (docs/protocol.md §22).
func TestQueueCollectorHandoffs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c := newClient(t, rdb, false)
	enqueue(t, c, "a", "m", nil)
	require.NoError(t, rdb.RPush(context.Background(), "carmine:mq:a:handoffs", "Cb1", "Cb2").Err())
	col := NewQueueCollector(c, &QueueOptions{Queues: []string{"a"}})
	assert.Equal(t, map[string]float64{`mq_handoffs_pending{queue="a"}`: 2}, only(gather(t, col), "mq_handoffs_"))
}

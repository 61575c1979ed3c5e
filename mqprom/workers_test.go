package mqprom

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkerCollector runs a real worker on a real redis-server over 10
// messages: 7 succeed at once, "2" succeeds on its retry, "0" fails, is
// retried by the policy and fails for good on its last attempt, and "1"
// fails for good at once (mq.Final). The histograms count the 12
// handlings by outcome and the 10 first attempts, and the counters are the
// worker's.
func TestWorkerCollector(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	const q = "jobs"
	col := NewWorkerCollector(nil)

	handler := mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
		switch m.ID {
		case "0":
			return errors.New("boom")
		case "1":
			return mq.Final(errors.New("poison"))
		case "2":
			if m.Attempt == 1 {
				return mq.Retry(0)
			}
		}
		return nil
	})
	const backoff = 100 * time.Millisecond
	for i := range 10 {
		var opts *mq.EnqueueOptions
		if i == 9 {
			opts = &mq.EnqueueOptions{InitialBackoff: backoff}
		}
		enqueue(t, c, q, fmt.Sprint(i), opts)
	}
	// The delayed message was first enqueued an hour ago: its queueing
	// time counts from the end of its delay, not from then.
	require.NoError(t, c.Redis().HSet(context.Background(), "carmine:mq:jobs:udts", "9", time.Now().Add(-time.Hour).UnixMilli()).Err())
	w, err := c.StartWorker(context.Background(), q, &mq.WorkerConfig{
		Handler: handler, Observer: col, EndOfQueueBackoff: mq.Constant(20 * time.Millisecond),
		MaxAttempts: 2, RetryBackoff: func(int) time.Duration { return 0 },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	col.Add(w)
	col.Add(w) // twice does nothing

	queuetest.WaitFor(t, "12 outcomes recorded", func() bool {
		n := w.Stats().Counts
		return n.Succeeded+n.Retried+n.Failed+n.Dead == 12
	})
	got := gather(t, col)
	assert.Equal(t, 1.0, got[`mq_worker_running{queue="jobs"}`])
	require.NoError(t, w.Stop(context.Background()))

	got = gather(t, col)
	assert.Equal(t, map[string]float64{
		`mq_worker_handling_seconds_count{outcome="succeeded",queue="jobs"}`: 8,
		`mq_worker_handling_seconds_count{outcome="retried",queue="jobs"}`:   1,
		`mq_worker_handling_seconds_count{outcome="failed",queue="jobs"}`:    1,
		`mq_worker_handling_seconds_count{outcome="dead",queue="jobs"}`:      2,
		`mq_worker_queueing_seconds_count{queue="jobs"}`:                     10,
	}, only(got, "mq_worker_handling_seconds_count", "mq_worker_queueing_seconds_count"))
	assert.Less(t, got[`mq_worker_queueing_seconds_sum{queue="jobs"}`], (30 * time.Minute).Seconds(),
		"the delayed message's queueing time counts from when it was due, not from its first enqueue an hour ago")
	assert.Equal(t, map[string]float64{
		`mq_worker_handled_total{outcome="succeeded",queue="jobs"}`: 8,
		`mq_worker_handled_total{outcome="retried",queue="jobs"}`:   1,
		`mq_worker_handled_total{outcome="failed",queue="jobs"}`:    1,
		`mq_worker_handled_total{outcome="dead",queue="jobs"}`:      2,
		`mq_worker_handled_total{outcome="lock_lost",queue="jobs"}`: 0,
		`mq_worker_handled_total{outcome="abandoned",queue="jobs"}`: 0,
		`mq_worker_handled_total{outcome="cancelled",queue="jobs"}`: 0,
	}, only(got, "mq_worker_handled_total"))
	assert.Equal(t, 0.0, got[`mq_worker_running{queue="jobs"}`])
	n := w.Stats().Counts
	assert.Equal(t, float64(n.EndOfQueueSleeps), got[`mq_worker_end_of_queue_sleeps_total{queue="jobs"}`])
	assert.Equal(t, float64(n.Skips.DidGC), got[`mq_worker_poll_skips_total{queue="jobs",reason="did_gc"}`])
	assert.Equal(t, float64(n.Skips.QueuedWithBackoff), got[`mq_worker_poll_skips_total{queue="jobs",reason="queued_with_backoff"}`])

	// Two more workers of the queue add to the sums; a worker removed
	// keeps its counts in them.
	var more []*mq.Worker
	for range 2 {
		w, err := c.StartWorker(context.Background(), q, &mq.WorkerConfig{Handler: handler, Observer: col})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		col.Add(w)
		more = append(more, w)
	}
	col.Remove(w)
	col.Remove(w) // twice does nothing
	assert.Equal(t, 2.0, gather(t, col)[`mq_worker_running{queue="jobs"}`])
	for i := 10; i < 13; i++ {
		enqueue(t, c, q, fmt.Sprint(i), nil)
	}
	queuetest.WaitFor(t, "3 more successes", func() bool {
		return more[0].Stats().Counts.Succeeded+more[1].Stats().Counts.Succeeded == 3
	})
	for _, w := range more {
		require.NoError(t, w.Stop(context.Background()))
	}
	got = gather(t, col)
	assert.Equal(t, 11.0, got[`mq_worker_handled_total{outcome="succeeded",queue="jobs"}`])
	assert.Equal(t, 1.0, got[`mq_worker_handled_total{outcome="failed",queue="jobs"}`])
	assert.Equal(t, 2.0, got[`mq_worker_handled_total{outcome="dead",queue="jobs"}`])
	assert.Equal(t, 11.0, got[`mq_worker_handling_seconds_count{outcome="succeeded",queue="jobs"}`])

	problems, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, problems, "metric names and help pass promlint")
}

// TestWorkerCollectorAbandoned: a handling cut short by a stop is observed
// and counted as abandoned.
func TestWorkerCollectorAbandoned(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	col := NewWorkerCollector(nil)
	started := make(chan struct{})
	w, err := c.StartWorker(context.Background(), "q", &mq.WorkerConfig{
		Observer: col,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}),
	})
	require.NoError(t, err)
	col.Add(w)
	enqueue(t, c, "q", "stuck", nil)
	<-started
	require.NoError(t, w.Close())
	queuetest.WaitFor(t, "the handling observed", func() bool {
		return gather(t, col)[`mq_worker_handling_seconds_count{outcome="abandoned",queue="q"}`] == 1
	})
	assert.Equal(t, 1.0, gather(t, col)[`mq_worker_handled_total{outcome="abandoned",queue="q"}`])
}

// TestAddCountsCoversEveryCounter fails when mq.Counts gains a counter
// that addCounts does not add or that Collect does not export: it gives
// every counter a value of its own, and checks that the sums carry each
// and that a scrape exports each exactly once, under its name and labels.
func TestAddCountsCoversEveryCounter(t *testing.T) {
	var b mq.Counts
	n := int64(1)
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Int64:
				f.SetInt(n)
				n++
			case reflect.Struct:
				fill(f)
			default:
				t.Fatalf("mq.Counts field of kind %v: teach addCounts and this test about it", f.Kind())
			}
		}
	}
	fill(reflect.ValueOf(&b).Elem())
	var a mq.Counts
	addCounts(&a, b)
	assert.Equal(t, b, a)

	// A worker removed leaves its counts in retired, which Collect
	// exports as it does a running worker's.
	col := NewWorkerCollector(nil)
	col.retired["q"] = &b
	got := only(gather(t, col), "mq_worker_")
	delete(got, `mq_worker_running{queue="q"}`)
	var values []float64
	for _, v := range got {
		values = append(values, v)
	}
	slices.Sort(values)
	var want []float64
	for v := range n - 1 {
		want = append(want, float64(v+1))
	}
	assert.Equal(t, want, values, "each counter exported once: %v", got)

	handled := func(outcome string) string { return `mq_worker_handled_total{outcome="` + outcome + `",queue="q"}` }
	skip := func(reason string) string { return `mq_worker_poll_skips_total{queue="q",reason="` + reason + `"}` }
	s := b.Skips
	assert.Equal(t, map[string]float64{
		handled("succeeded"): float64(b.Succeeded),
		handled("retried"):   float64(b.Retried),
		handled("failed"):    float64(b.Failed),
		handled("dead"):      float64(b.Dead),
		handled("lock_lost"): float64(b.LockLost),
		handled("abandoned"): float64(b.Abandoned),
		handled("cancelled"): float64(b.Cancelled),

		`mq_worker_released_total{queue="q"}`:            float64(b.Released),
		`mq_worker_backoffs_set_total{queue="q"}`:        float64(b.BackoffsSet),
		`mq_worker_locks_renewed_total{queue="q"}`:       float64(b.LocksRenewed),
		`mq_worker_poll_errors_total{queue="q"}`:         float64(b.PollErrors),
		`mq_worker_burst_polls_total{queue="q"}`:         float64(b.BurstPolls),
		`mq_worker_end_of_queue_sleeps_total{queue="q"}`: float64(b.EndOfQueueSleeps),

		skip("did_trim"):            float64(s.DidTrim),
		skip("unexpected"):          float64(s.Unexpected),
		skip("locked"):              float64(s.Locked),
		skip("queued_with_backoff"): float64(s.QueuedWithBackoff),
		skip("done_with_backoff"):   float64(s.DoneWithBackoff),
		skip("did_requeue"):         float64(s.DidRequeue),
		skip("did_gc"):              float64(s.DidGC),
		skip("quarantined"):         float64(s.Quarantined),
		skip("indexed"):             float64(s.Indexed),
		skip("suspect"):             float64(s.Suspect),
		skip("rate_limited"):        float64(s.RateLimited),
		skip("limited"):             float64(s.Limited),
		skip("parked"):              float64(s.Parked),
		skip("other"):               float64(s.Other),
		skip("cancelled"):           float64(s.Cancelled),
	}, got)
}

// TestWorkerCollectorQuarantined: a message whose handling never answered
// (its worker closed while the handler ran, as a dead process would leave
// it) is buried by the next worker's poll once its lock runs out, and that
// worker's quarantined skip is exported.
func TestWorkerCollectorQuarantined(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	ctx := context.Background()
	started := make(chan struct{}, 1)
	first, err := c.StartWorker(ctx, "q", &mq.WorkerConfig{
		LockTime: time.Second, NoLockRenewal: true,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			select { // once, should the lock run out before the Close
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ctx.Err()
		}),
	})
	require.NoError(t, err)
	enqueue(t, c, "q", "stuck", nil)
	<-started
	require.NoError(t, first.Close())
	queuetest.WaitFor(t, "the message left locked, with no outcome", func() bool { return first.Stats().Counts.Abandoned >= 1 })

	col := NewWorkerCollector(nil)
	second, err := c.StartWorker(ctx, "q", &mq.WorkerConfig{
		QuarantineAfter: 1, EndOfQueueBackoff: mq.Constant(20 * time.Millisecond),
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			t.Errorf("handed out again: %s", m.ID)
			return nil
		}),
	})
	require.NoError(t, err)
	col.Add(second)
	queuetest.WaitFor(t, "the message quarantined", func() bool { return second.Stats().Counts.Skips.Quarantined == 1 })
	require.NoError(t, second.Stop(ctx))
	assert.Equal(t, 1.0, gather(t, col)[`mq_worker_poll_skips_total{queue="q",reason="quarantined"}`])
	page, err := c.Inspector().DeadLetters(ctx, "q", "", 10)
	require.NoError(t, err)
	assert.Len(t, page.Items, 1)
}

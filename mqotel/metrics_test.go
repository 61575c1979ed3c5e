package mqotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/gocarmine/mq/mqotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newMetrics answers a meter provider read by hand.
func newMetrics(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, r
}

// collect reads every data point once, by metric name and attributes
// (other than messaging.system): a sum or gauge gives its value, a
// histogram its count, and name+".sum" its sum.
func collect(t *testing.T, r *sdkmetric.ManualReader) (map[string]float64, error) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	err := r.Collect(context.Background(), &rm)
	out := map[string]float64{}
	key := func(name string, set attribute.Set) string {
		s := name
		for _, kv := range set.ToSlice() {
			if kv.Key == "messaging.system" {
				assert.Equal(t, mqotel.System, kv.Value.AsString())
				continue
			}
			s += " " + string(kv.Key) + "=" + kv.Value.Emit()
		}
		return s
	}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, mqotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Count)
					out[key(m.Name+".sum", p.Attributes)] = p.Sum
				}
			default:
				t.Fatalf("unexpected data %T of %s", m.Data, m.Name)
			}
		}
	}
	return out, err
}

// TestMetricsObserver runs a worker over messages that succeed, retry,
// fail and fail for good: the counter and histograms count every
// handling by outcome, and every first attempt's queueing time.
func TestMetricsObserver(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	mp, reader := newMetrics(t)
	obs, err := mqotel.NewMetricsObserver(mqotel.WithMeterProvider(mp))
	require.NoError(t, err)
	c := newClient(t, srv)
	const q = "jobs"
	const backoff = 100 * time.Millisecond
	for _, id := range []string{"ok1", "ok2", "retries", "fails", "final"} {
		_, err := c.Enqueue(context.Background(), q, id, &mq.EnqueueOptions{MessageID: id})
		require.NoError(t, err)
	}
	_, err = c.Enqueue(context.Background(), q, "late", &mq.EnqueueOptions{MessageID: "late", InitialBackoff: backoff})
	require.NoError(t, err)
	// First enqueued an hour ago: its queueing time counts from the end
	// of its delay, not from then.
	require.NoError(t, c.Redis().HSet(context.Background(), "carmine:mq:jobs:udts", "late", time.Now().Add(-time.Hour).UnixMilli()).Err())
	boom := errors.New("boom")
	w := startWorker(t, context.Background(), c, q, mq.WorkerConfig{
		MaxAttempts: 2, RetryBackoff: func(int) time.Duration { return 0 }, Observer: obs,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			switch {
			case m.ID == "fails":
				return boom
			case m.ID == "final":
				return mq.Final(boom)
			case m.ID == "retries" && m.Attempt == 1:
				return mq.Retry(0)
			}
			return nil
		}),
	})
	queuetest.WaitFor(t, "8 outcomes recorded", func() bool {
		n := w.Stats().Counts
		return n.Succeeded+n.Failed+n.Retried+n.Dead == 8
	})
	require.NoError(t, w.Stop(context.Background()))

	got, err := collect(t, reader)
	require.NoError(t, err)
	dest := " messaging.destination.name=" + q
	for _, name := range []string{mqotel.HandledName, mqotel.HandlingDurationName} {
		for outcome, n := range map[string]float64{"succeeded": 4, "retried": 1, "failed": 1, "dead": 2} {
			assert.Equal(t, n, got[name+" messaging.carmine_mq.outcome="+outcome+dest], "%s %s", name, outcome)
		}
	}
	assert.Equal(t, 6.0, got[mqotel.QueueingDurationName+dest], "first attempts only")
	assert.Less(t, got[mqotel.QueueingDurationName+".sum"+dest], (30 * time.Minute).Seconds(),
		"the delayed message's queueing time counts from when it was due, not from its first enqueue an hour ago")
	assert.Len(t, got, 4+4*2+2, "no other series: 4 counters, 4 handling histograms (count and sum), 1 queueing")
}

// TestQueueGauges reads the counts of queues from Redis at each
// collection, and reports an error for a queue it cannot read.
func TestQueueGauges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	mp, reader := newMetrics(t)
	c := newClient(t, srv)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		_, err := c.Enqueue(ctx, "one", id, &mq.EnqueueOptions{MessageID: id})
		require.NoError(t, err)
	}
	_, err := c.Enqueue(ctx, "one", "later", &mq.EnqueueOptions{InitialBackoff: time.Hour})
	require.NoError(t, err)
	_, err = c.Enqueue(ctx, "two", "x", &mq.EnqueueOptions{Priority: mq.PriorityHigh})
	require.NoError(t, err)
	_, err = c.Inspector().PauseQueue(ctx, "two")
	require.NoError(t, err)

	all, err := mqotel.RegisterQueueGauges(c, nil, mqotel.WithMeterProvider(mp))
	require.NoError(t, err)
	got, err := collect(t, reader)
	require.NoError(t, err)
	want := map[string]float64{}
	for q, counts := range map[string][5]float64{"one": {2, 0, 1, 0, 0}, "two": {1, 0, 0, 0, 0}} {
		for i, state := range []string{"queued", "locked", "backoff", "done", "dead"} {
			want[mqotel.QueueMessagesName+" messaging.carmine_mq.state="+state+" messaging.destination.name="+q] = counts[i]
		}
	}
	want[mqotel.QueuePausedName+" messaging.destination.name=one"] = 0
	want[mqotel.QueuePausedName+" messaging.destination.name=two"] = 1
	want[mqotel.QueueResultsName+" messaging.destination.name=one"] = 0
	want[mqotel.QueueResultsName+" messaging.destination.name=two"] = 0
	for _, name := range []string{mqotel.QueueLimitSlotsName, mqotel.QueueLimitParkedName, mqotel.QueueHandoffsName} {
		want[name+" messaging.destination.name=one"] = 0
		want[name+" messaging.destination.name=two"] = 0
	}
	for q, n := range map[string][2]float64{"one": {0, 0}, "two": {1, 0}} {
		want[mqotel.QueueReadyByPriorityName+" messaging.carmine_mq.priority=high messaging.destination.name="+q] = n[0]
		want[mqotel.QueueReadyByPriorityName+" messaging.carmine_mq.priority=low messaging.destination.name="+q] = n[1]
	}
	assert.Equal(t, want, got)

	// A new message shows at the next collection.
	_, err = c.Enqueue(ctx, "one", "c", nil)
	require.NoError(t, err)
	got, err = collect(t, reader)
	require.NoError(t, err)
	assert.Equal(t, 3.0, got[mqotel.QueueMessagesName+" messaging.carmine_mq.state=queued messaging.destination.name=one"])
	require.NoError(t, all.Unregister())

	// Named queues only; one that cannot be read is an error, the rest
	// still reported.
	named, err := mqotel.RegisterQueueGauges(c, []string{"two", "bad name\x00"}, mqotel.WithMeterProvider(mp))
	require.NoError(t, err)
	defer func() { _ = named.Unregister() }()
	got, err = collect(t, reader)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `counts of queue "bad name\x00"`)
	assert.Equal(t, 1.0, got[mqotel.QueuePausedName+" messaging.destination.name=two"])
	assert.NotContains(t, got, mqotel.QueuePausedName+" messaging.destination.name=one")
}

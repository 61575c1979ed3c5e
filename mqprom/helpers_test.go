package mqprom

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The shared clusters stop before goleak looks for leaked goroutines.
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// gather registers cs in a pedantic registry (which checks that every
// metric collected was described and is consistent), gathers once, and
// answers every sample by its name and labels, as in the text format:
// `mq_queue_messages{queue="q",state="queued"}`. A histogram gives its
// _count and _sum.
func gather(t *testing.T, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		require.NoError(t, reg.Register(c))
	}
	mfs, err := reg.Gather()
	require.NoError(t, err, "a scrape never fails")
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + labelString(m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()+"_count"+labelString(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labelString(m.GetLabel())] = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("unexpected metric type %v of %s", mf.GetType(), mf.GetName())
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// only keeps the samples whose name starts with one of prefixes.
func only(samples map[string]float64, prefixes ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range samples {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				out[k] = v
			}
		}
	}
	return out
}

// queueSamples are the samples QueueCollector exports for one queue.
func queueSamples(q string, queued, locked, backoff, done, total, dead int, paused bool) map[string]float64 {
	p := 0.0
	if paused {
		p = 1
	}
	samples := map[string]float64{
		`mq_queue_messages{queue="` + q + `",state="queued"}`:  float64(queued),
		`mq_queue_messages{queue="` + q + `",state="locked"}`:  float64(locked),
		`mq_queue_messages{queue="` + q + `",state="backoff"}`: float64(backoff),
		`mq_queue_messages{queue="` + q + `",state="done"}`:    float64(done),
		`mq_queue_total_messages{queue="` + q + `"}`:           float64(total),
		`mq_queue_dead_letters{queue="` + q + `"}`:             float64(dead),
		`mq_queue_paused{queue="` + q + `"}`:                   p,
		`mq_queue_stale{queue="` + q + `"}`:                    0,
		`mq_queue_results{queue="` + q + `"}`:                  0,
	}
	// Ready by priority: none, unless the test sets them.
	samples[`mq_queue_ready_by_priority{priority="high",queue="`+q+`"}`] = 0
	samples[`mq_queue_ready_by_priority{priority="low",queue="`+q+`"}`] = 0
	return samples
}

// stale marks samples of queueSamples as the last read: mq_queue_stale 1.
func stale(samples map[string]float64) map[string]float64 {
	for k := range samples {
		if strings.HasPrefix(k, "mq_queue_stale{") {
			samples[k] = 1
		}
	}
	return samples
}

// merge merges maps of samples.
func merge(ms ...map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// newClient returns an mq client on rdb, logging to the test log.
func newClient(t *testing.T, rdb redis.UniversalClient, cluster bool) *mq.Client {
	t.Helper()
	c, err := mq.New(rdb, &mq.Config{Cluster: cluster, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	require.NoError(t, err)
	return c
}

// testWriter writes to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// recorder is a slog.Handler that keeps the records it is given.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// errors answers the "error" attributes of the records kept.
func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, rec := range r.records {
		rec.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && a.Key == "error" {
				errs = append(errs, err)
			}
			return true
		})
	}
	return errs
}

func enqueue(t *testing.T, c *mq.Client, q, id string, opts *mq.EnqueueOptions) {
	t.Helper()
	if opts == nil {
		opts = &mq.EnqueueOptions{}
	}
	opts.MessageID = id
	res, err := c.Enqueue(context.Background(), q, id, opts)
	require.NoError(t, err)
	require.True(t, res.OK(), "enqueue of %s: %v", id, res.Refused)
}

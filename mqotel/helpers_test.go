package mqotel_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient answers a client of its own, on a Redis connection of its
// own, to srv: a producer and a consumer in separate processes share
// nothing but Redis.
func newClient(t *testing.T, srv *redistest.Server) *mq.Client {
	t.Helper()
	c, err := mq.New(srv.Client(t), &mq.Config{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	require.NoError(t, err)
	return c
}

// testWriter writes to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newTracing answers a tracer provider that hands every ended span to the
// in-memory exporter at once.
func newTracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// startWorker starts a worker that polls often, stopped when the test
// ends.
func startWorker(t *testing.T, ctx context.Context, c *mq.Client, q string, cfg mq.WorkerConfig) *mq.Worker {
	t.Helper()
	cfg.EndOfQueueBackoff = mq.Constant(10 * time.Millisecond)
	w, err := c.StartWorker(ctx, q, &cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// spansNamed answers the ended spans of that name, in the order they
// ended.
func spansNamed(exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// attrs answers a span's attributes by key, as their Emit strings.
func attrs(s tracetest.SpanStub) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

package mqotel_test

import (
	"context"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/gocarmine/mq/mqotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// TestMiddleware traces through the core's middleware lists alone: a
// client's plain Enqueue and EnqueueMany (here a typed producer's) are in
// send and create spans under the request's, and each handling, by a
// typed handler, is a child of its message's span.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	opts := []mqotel.Option{mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c)}
	producer, err := mq.New(srv.Client(t), &mq.Config{EnqueueMiddleware: []mq.EnqueueMiddleware{mqotel.EnqueueMiddleware(opts...)}})
	require.NoError(t, err)
	const q = "mw"

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	meta := map[string]string{"tenant": "t1"}
	_, err = producer.Enqueue(ctx, q, "one", &mq.EnqueueOptions{MessageID: "one", Metadata: meta})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"tenant": "t1"}, meta, "the caller's metadata is not changed")
	typed, err := mq.NewProducer[string](producer, q)
	require.NoError(t, err)
	_, err = typed.EnqueueMany(ctx,
		mq.TypedRequest[string]{Message: "two", Options: &mq.EnqueueOptions{MessageID: "two"}},
		mq.TypedRequest[string]{Message: "three", Options: &mq.EnqueueOptions{MessageID: "three"}})
	require.NoError(t, err)
	request.End()

	type seen struct {
		id, v, tenant string
		span          trace.SpanContext
	}
	done := make(chan seen, 3)
	w := startWorker(t, context.Background(), newClient(t, srv), q, mq.WorkerConfig{
		Handler: mq.HandleTyped(func(ctx context.Context, m *mq.Message, v string) error {
			done <- seen{m.ID, v, m.Metadata["tenant"], trace.SpanContextFromContext(ctx)}
			return nil
		}),
		Middleware: []mq.Middleware{mqotel.Middleware(opts...)},
	})
	got := map[string]seen{}
	for range 3 {
		s := <-done
		got[s.id] = s
	}
	require.NoError(t, w.Stop(context.Background()))
	assert.Equal(t, "one", got["one"].v)
	assert.Equal(t, "t1", got["one"].tenant)

	sends := spansNamed(exp, "send mw")
	require.Len(t, sends, 2) // Enqueue's, and the batch's
	for _, s := range sends {
		assert.Equal(t, request.SpanContext().SpanID(), s.Parent.SpanID())
	}
	parents := map[string]trace.SpanID{} // message id -> its producer span
	for _, s := range append(sends, spansNamed(exp, "create mw")...) {
		if id := attrs(s)["messaging.message.id"]; id != "" && s.SpanKind == trace.SpanKindProducer {
			parents[id] = s.SpanContext.SpanID()
		}
	}
	require.Len(t, parents, 3)
	procs := spansNamed(exp, "process mw")
	require.Len(t, procs, 3)
	for _, p := range procs {
		id := attrs(p)["messaging.message.id"]
		assert.Equal(t, parents[id], p.Parent.SpanID(), "the handling of %s is a child of its enqueue", id)
		assert.Equal(t, p.SpanContext, got[id].span, "the handler's ctx carries the span")
	}
}

package mqotel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/gocarmine/mq/mqotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var w3c = propagation.TraceContext{}

// TestTraceAcrossClients enqueues a message in a request's span through
// one client and handles it through another: the handling's span is a
// child of the enqueue's, in the request's trace, and the handler still
// reads the content it was given, with the trace context beside it.
func TestTraceAcrossClients(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	producer := mqotel.NewProducer(newClient(t, srv), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c))
	consumer := newClient(t, srv)
	const q = "emails"

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	callerMeta := map[string]string{"tenant": "t1"}
	res, err := producer.Enqueue(ctx, q, map[string]string{"to": "ada"},
		&mq.EnqueueOptions{MessageID: "m1", Metadata: callerMeta})
	require.NoError(t, err)
	require.True(t, res.OK())
	assert.Equal(t, map[string]string{"tenant": "t1"}, callerMeta, "the caller's options are not changed")
	request.End()

	type seen struct {
		to   string
		meta map[string]string
		span trace.SpanContext
	}
	handled := make(chan seen, 1)
	w := startWorker(t, context.Background(), consumer, q, mq.WorkerConfig{
		Handler: mqotel.Handler(mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var v map[string]string
			if err := m.Decode(&v); err != nil {
				return err
			}
			handled <- seen{v["to"], m.Metadata, trace.SpanContextFromContext(ctx)}
			return nil
		}), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c)),
	})
	got := <-handled
	require.NoError(t, w.Stop(context.Background()))

	assert.Equal(t, "ada", got.to, "the content is the message as given")
	assert.Equal(t, "t1", got.meta["tenant"], "the caller's metadata travels too")
	assert.Contains(t, got.meta, "traceparent")

	sends := spansNamed(exp, "send emails")
	procs := spansNamed(exp, "process emails")
	require.Len(t, sends, 1)
	require.Len(t, procs, 1)
	send, proc := sends[0], procs[0]
	assert.Equal(t, request.SpanContext().SpanID(), send.Parent.SpanID(), "the enqueue is in the request's span")
	assert.Equal(t, trace.SpanKindProducer, send.SpanKind)
	assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
	assert.Equal(t, request.SpanContext().TraceID(), proc.SpanContext.TraceID(), "the handling is in the request's trace")
	assert.Equal(t, send.SpanContext.SpanID(), proc.Parent.SpanID(), "the handling's parent is the enqueue")
	assert.True(t, proc.Parent.IsRemote())
	assert.Equal(t, proc.SpanContext, got.span, "the handler's ctx carries the handling's span")
	assert.Equal(t, codes.Unset, proc.Status.Code)

	assert.Equal(t, map[string]string{
		"messaging.system": "carmine_mq", "messaging.destination.name": q, "messaging.message.id": "m1",
		"messaging.operation.type": "send", "messaging.operation.name": "send",
		"messaging.carmine_mq.enqueue.action": "added",
	}, toStrings(attrs(send)))
	assert.Equal(t, map[string]string{
		"messaging.system": "carmine_mq", "messaging.destination.name": q, "messaging.message.id": "m1",
		"messaging.operation.type": "process", "messaging.operation.name": "process",
		"messaging.carmine_mq.message.attempt": "1", "messaging.carmine_mq.outcome": "succeeded",
	}, toStrings(attrs(proc)))
}

// TestEnqueueMany gives each message of a batch a create span of its
// own, under the batch's send span, and each handling that span as its
// parent.
func TestEnqueueMany(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	producer := mqotel.NewProducer(newClient(t, srv), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c))
	const q = "batch"
	res, err := producer.EnqueueMany(context.Background(), q,
		mq.EnqueueRequest{Message: "a", Options: &mq.EnqueueOptions{MessageID: "a"}},
		mq.EnqueueRequest{Message: "b"},
		mq.EnqueueRequest{Message: "a again", Options: &mq.EnqueueOptions{MessageID: "a"}})
	require.NoError(t, err)
	require.Len(t, res, 3)
	require.ErrorIs(t, res[2].Refused, mq.ErrAlreadyQueued)

	done := make(chan string, 2)
	w := startWorker(t, context.Background(), newClient(t, srv), q, mq.WorkerConfig{
		Handler: mqotel.Handler(mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			done <- m.ID
			return nil
		}), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c)),
	})
	<-done
	<-done
	require.NoError(t, w.Stop(context.Background()))

	sends := spansNamed(exp, "send batch")
	require.Len(t, sends, 1)
	send := sends[0]
	assert.Equal(t, trace.SpanKindClient, send.SpanKind)
	assert.Equal(t, "3", attrs(send)["messaging.batch.message_count"])
	creates := map[string]tracetest.SpanStub{} // by message id, the refused one last
	for _, c := range spansNamed(exp, "create batch") {
		assert.Equal(t, send.SpanContext.SpanID(), c.Parent.SpanID())
		assert.Equal(t, trace.SpanKindProducer, c.SpanKind)
		a := attrs(c)
		if a["messaging.carmine_mq.enqueue.action"] == "refused" {
			assert.Equal(t, mq.ErrAlreadyQueued.Error(), a["messaging.carmine_mq.enqueue.refused"])
			continue
		}
		creates[a["messaging.message.id"]] = c
	}
	require.Len(t, creates, 2)
	assert.Contains(t, creates, res[1].MessageID, "a generated id is recorded")
	procs := spansNamed(exp, "process batch")
	require.Len(t, procs, 2)
	for _, p := range procs {
		c := creates[attrs(p)["messaging.message.id"]]
		assert.Equal(t, c.SpanContext.SpanID(), p.Parent.SpanID(), "each handling's parent is its message's create span")
	}
}

// TestOutcomes fails, retries and dead-letters messages: each attempt
// has its span, failures have an error status, and the outcome tells a
// retry from a dead letter.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	c := newClient(t, srv)
	producer := mqotel.NewProducer(c, mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c))
	const q = "jobs"
	for _, id := range []string{"fails", "retries", "final", "withdrawn"} {
		_, err := producer.Enqueue(context.Background(), q, id, &mq.EnqueueOptions{MessageID: id})
		require.NoError(t, err)
	}
	boom := errors.New("boom")
	w := startWorker(t, context.Background(), c, q, mq.WorkerConfig{
		MaxAttempts:  2,
		RetryBackoff: func(int) time.Duration { return 0 },
		Handler: mqotel.Handler(mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			switch {
			case m.ID == "fails":
				return boom
			case m.ID == "final":
				return mq.Final(boom)
			case m.ID == "withdrawn":
				return fmt.Errorf("withdrawn: %w", mq.ErrCancelled)
			case m.Attempt == 1:
				return mq.Retry(0)
			}
			return nil
		}), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c)),
	})
	queuetest.WaitFor(t, "6 outcomes recorded", func() bool {
		n := w.Stats().Counts
		return n.Succeeded+n.Failed+n.Retried+n.Dead+n.Cancelled == 6
	})
	require.NoError(t, w.Stop(context.Background()))

	sends := map[string]tracetest.SpanStub{}
	for _, s := range spansNamed(exp, "send jobs") {
		sends[attrs(s)["messaging.message.id"]] = s
	}
	type key struct {
		id      string
		attempt string
	}
	type rec struct {
		outcome string
		status  codes.Code
		errType string
		events  int
	}
	got := map[key]rec{}
	for _, p := range spansNamed(exp, "process jobs") {
		a := attrs(p)
		id := a["messaging.message.id"]
		got[key{id, a["messaging.carmine_mq.message.attempt"]}] = rec{a["messaging.carmine_mq.outcome"], p.Status.Code, a["error.type"], len(p.Events)}
		assert.Equal(t, sends[id].SpanContext.SpanID(), p.Parent.SpanID(), "every attempt of %s is a child of its enqueue", id)
	}
	assert.Equal(t, map[key]rec{
		{"fails", "1"}:     {"failed", codes.Error, "*errors.errorString", 1},
		{"fails", "2"}:     {"dead", codes.Error, "*errors.errorString", 1},
		{"final", "1"}:     {"dead", codes.Error, "*errors.errorString", 1}, // the cause's type, not mq.Final's wrapper
		{"retries", "1"}:   {"retried", codes.Unset, "", 0},
		{"retries", "2"}:   {"succeeded", codes.Unset, "", 0},
		{"withdrawn", "1"}: {"cancelled", codes.Unset, "", 0},
	}, got)
}

// TestPanic records a panicking handler's span as failed and lets the
// worker recover the panic as it does without the middleware.
func TestPanic(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	c := newClient(t, srv)
	const q = "panics"
	_, err := c.Enqueue(context.Background(), q, "x", nil)
	require.NoError(t, err)
	w := startWorker(t, context.Background(), c, q, mq.WorkerConfig{
		MaxAttempts: 1,
		Handler: mqotel.Handler(mq.HandlerFunc(func(context.Context, *mq.Message) error {
			panic("oops")
		}), mqotel.WithTracerProvider(tp), mqotel.WithMaxAttempts(1)),
	})
	queuetest.WaitFor(t, "the dead letter", func() bool { return w.Stats().Counts.Dead == 1 })
	require.NoError(t, w.Stop(context.Background()))
	procs := spansNamed(exp, "process panics")
	require.Len(t, procs, 1)
	assert.Equal(t, codes.Error, procs[0].Status.Code)
	assert.Contains(t, procs[0].Status.Description, "oops")
	assert.Equal(t, "dead", attrs(procs[0])["messaging.carmine_mq.outcome"])
}

// TestWithoutTraceContext handles a message enqueued without one (as
// Carmine or a plain mq.Client enqueue it) in the root span of a new
// trace, not under the span the worker's context happens to carry.
func TestWithoutTraceContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	c := newClient(t, srv)
	const q = "plain"
	_, err := c.Enqueue(context.Background(), q, "x", &mq.EnqueueOptions{MessageID: "p1"})
	require.NoError(t, err)

	wctx, startup := tp.Tracer("test").Start(context.Background(), "startup")
	defer startup.End()
	done := make(chan struct{})
	w := startWorker(t, wctx, c, q, mq.WorkerConfig{
		Handler: mqotel.Handler(mq.HandlerFunc(func(context.Context, *mq.Message) error {
			close(done)
			return nil
		}), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c)),
	})
	<-done
	require.NoError(t, w.Stop(context.Background()))
	procs := spansNamed(exp, "process plain")
	require.Len(t, procs, 1)
	p := procs[0]
	assert.False(t, p.Parent.IsValid(), "a root span")
	assert.NotEqual(t, startup.SpanContext().TraceID(), p.SpanContext.TraceID())
	assert.Empty(t, p.Links)
	assert.Equal(t, "p1", attrs(p)["messaging.message.id"])
}

// TestLinkedTrace starts each handling in a trace of its own, linked to
// the enqueue's span.
func TestLinkedTrace(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	producer := mqotel.NewProducer(newClient(t, srv), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c))
	const q = "linked"
	_, err := producer.Enqueue(context.Background(), q, "x", nil)
	require.NoError(t, err)
	done := make(chan struct{})
	w := startWorker(t, context.Background(), newClient(t, srv), q, mq.WorkerConfig{
		Handler: mqotel.Handler(mq.HandlerFunc(func(context.Context, *mq.Message) error {
			close(done)
			return nil
		}), mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c), mqotel.WithLinkedTrace()),
	})
	<-done
	require.NoError(t, w.Stop(context.Background()))
	send := spansNamed(exp, "send linked")
	procs := spansNamed(exp, "process linked")
	require.Len(t, send, 1)
	require.Len(t, procs, 1)
	p := procs[0]
	assert.False(t, p.Parent.IsValid(), "a root span")
	assert.NotEqual(t, send[0].SpanContext.TraceID(), p.SpanContext.TraceID())
	require.Len(t, p.Links, 1)
	assert.Equal(t, send[0].SpanContext.SpanID(), p.Links[0].SpanContext.SpanID())
	assert.Equal(t, send[0].SpanContext.TraceID(), p.Links[0].SpanContext.TraceID())
}

func toStrings(m map[attribute.Key]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

// TestEnqueueError marks the span of an enqueue that Redis never answered
// as failed.
func TestEnqueueError(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tp, exp := newTracing(t)
	rdb := srv.Client(t)
	c, err := mq.New(rdb, nil)
	require.NoError(t, err)
	require.NoError(t, rdb.Close())
	producer := mqotel.NewProducer(c, mqotel.WithTracerProvider(tp), mqotel.WithPropagator(w3c))
	_, err = producer.Enqueue(context.Background(), "q", "x", nil)
	require.Error(t, err)
	_, err = producer.EnqueueMany(context.Background(), "q", mq.EnqueueRequest{Message: "y"})
	require.Error(t, err)
	spans := exp.GetSpans()
	require.Len(t, spans, 3, "send, create, send")
	for _, s := range spans {
		assert.Equal(t, codes.Error, s.Status.Code, s.Name)
	}
}

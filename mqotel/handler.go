package mqotel

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocarmine/mq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Handler wraps next so that each handling runs in a span "process
// <queue>" of kind Consumer, which next's ctx carries. It takes the
// options WithTracerProvider, WithPropagator, WithMaxAttempts and
// WithLinkedTrace.
//
// The span's parent is the producer's span, read from msg.Metadata with
// the propagator: a message is handled by one handler at a time, so its
// handlings (one per attempt) belong in the trace of the request that
// enqueued it, as siblings under the producer's span, and a trace viewer
// shows the queueing delay between them. With WithLinkedTrace the span
// starts a trace of its own with a link to the producer's span instead. A
// message without a trace context (enqueued without a Producer, or by
// Carmine) is handled in the root span of a new trace, whatever span ctx
// may carry: a worker's context outlives any one request.
//
// The span records the attempt number and the outcome (OutcomeKey, as an
// mq.Observer would see it): a failure sets its status to Error and
// records the error as an event, and its outcome says whether the message
// will be retried ("failed") or becomes a dead letter ("dead": an error
// marked mq.Final, or a failure on the last attempt, by the worker's
// MaxAttempts that the message carries). An
// mq.Retry answer is outcome "retried" and no error; a failure after ctx
// ended is "abandoned". A panic is recorded likewise and panics on, for
// the worker to recover.
func Handler(next mq.Handler, opts ...Option) mq.Handler {
	c := newConfig(opts)
	return &handler{next: next, tracer: c.tracer(), prop: c.prop, maxAttempts: c.maxAttempts, link: c.link}
}

type handler struct {
	next        mq.Handler
	tracer      trace.Tracer
	prop        propagation.TextMapPropagator
	maxAttempts int
	link        bool
}

func (h *handler) Handle(ctx context.Context, msg *mq.Message) (err error) {
	attrs := append(baseAttrs(msg.Queue),
		semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		semconv.MessagingMessageID(msg.ID), AttemptKey.Int(msg.Attempt))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}

	producer := trace.SpanContextFromContext(h.prop.Extract(context.Background(), propagation.MapCarrier(msg.Metadata)))
	parent := ctx
	switch {
	case !producer.IsValid():
		opts = append(opts, trace.WithNewRoot())
	case h.link:
		opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: producer}))
	default:
		// The propagator may carry more than the span (baggage, say):
		// extract into the handler's context, not a blank one.
		parent = h.prop.Extract(ctx, propagation.MapCarrier(msg.Metadata))
	}
	ctx, span := h.tracer.Start(parent, "process "+msg.Queue, opts...)
	defer span.End()

	defer func() {
		if r := recover(); r != nil {
			h.record(ctx, span, msg, fmt.Errorf("mq: handler panicked: %v", r))
			panic(r)
		}
	}()
	err = h.next.Handle(ctx, msg)
	h.record(ctx, span, msg, err)
	return err
}

// record sets the span's outcome from the handler's answer err.
func (h *handler) record(ctx context.Context, span trace.Span, msg *mq.Message, err error) {
	outcome := h.outcome(ctx, msg, err)
	span.SetAttributes(OutcomeKey.String(string(outcome)))
	switch outcome {
	case mq.OutcomeFailed, mq.OutcomeDead, mq.OutcomeAbandoned:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String(string(semconv.ErrorTypeKey), errorType(err)))
	}
}

// outcome names what the worker will make of err, as its retry policy
// does.
func (h *handler) outcome(ctx context.Context, msg *mq.Message, err error) mq.Outcome {
	if errors.Is(context.Cause(ctx), mq.ErrCancelled) || errors.Is(err, mq.ErrCancelled) {
		// Cancelled (docs/protocol.md §20): whatever the handler answered.
		return mq.OutcomeCancelled
	}
	if err == nil {
		return mq.OutcomeSucceeded
	}
	var a *mq.Answer
	if errors.As(err, &a) {
		return a.Kind
	}
	switch {
	case ctx.Err() != nil:
		return mq.OutcomeAbandoned
	case errors.Is(err, mq.ErrFinal), h.lastAttempt(msg):
		return mq.OutcomeDead
	}
	return mq.OutcomeFailed
}

// errorType is the error.type attribute of a failure: the Go type of the
// handler's own error, as the semantic conventions suggest when there is
// no better class. The wrapper mq.Final puts around it is no class of the
// user's and is looked through.
func errorType(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "context_deadline_exceeded"
	}
	if errors.Is(err, context.Canceled) {
		return "context_canceled"
	}
	return fmt.Sprintf("%T", finalCause(err))
}

// finalCause answers the error mq.Final was given, when err is what it
// returned, else err.
func finalCause(err error) error {
	for errors.Is(err, mq.ErrFinal) {
		u, ok := err.(interface{ Unwrap() []error })
		if !ok {
			return err
		}
		var cause error
		for _, e := range u.Unwrap() {
			if e != mq.ErrFinal {
				cause = e
				break
			}
		}
		if cause == nil {
			return err
		}
		err = cause
	}
	return err
}

// lastAttempt tells whether a failure of this handling makes the message a
// dead letter: by the worker's bound, which the message carries, unless
// WithMaxAttempts gave one.
func (h *handler) lastAttempt(msg *mq.Message) bool {
	limit := msg.MaxAttempts
	if h.maxAttempts != 0 {
		limit = h.maxAttempts
	}
	return limit > 0 && msg.Attempt >= limit
}

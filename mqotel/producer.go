package mqotel

import (
	"context"
	"maps"

	"github.com/gocarmine/mq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Producer enqueues through an mq.Client in spans, and puts each span's
// trace context into the message's metadata for the [Handler] on the
// other side. It is safe for concurrent use.
type Producer struct {
	client *mq.Client
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// next, when set, enqueues instead of client: the producer is then
	// an enqueue middleware (EnqueueMiddleware).
	next mq.EnqueueFunc
}

// NewProducer returns a Producer that enqueues with client. It takes the
// options WithTracerProvider and WithPropagator.
func NewProducer(client *mq.Client, opts ...Option) *Producer {
	c := newConfig(opts)
	return &Producer{client: client, tracer: c.tracer(), prop: c.prop}
}

// Client returns the client the producer enqueues with.
func (p *Producer) Client() *mq.Client { return p.client }

// Enqueue is mq.Client.Enqueue in a span "send <queue>" of kind Producer,
// a child of ctx's span, whose context goes into the message's metadata
// beside any metadata opts has (opts itself is not changed). An error
// sets the span's status to Error; a refusal by the queue is an answer,
// recorded as attributes only.
//
// The metadata is written only when the enqueue adds the message or
// updates it; a requeue (CanRequeue) keeps the metadata of the message it
// follows, and so that message's trace context.
func (p *Producer) Enqueue(ctx context.Context, queue string, msg any, opts *mq.EnqueueOptions) (mq.EnqueueResult, error) {
	ctx, span := p.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(sendAttrs(queue, opts)...))
	defer span.End()
	res, err := p.enqueue(ctx, queue, msg, p.inject(ctx, opts))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return res, err
	}
	span.SetAttributes(resultAttrs(res)...)
	return res, nil
}

// EnqueueMany is mq.Client.EnqueueMany in a span "send <queue>" of kind
// Client, with messaging.batch.message_count, and one child span "create
// <queue>" of kind Producer for each message, whose context goes into that
// message's metadata, as Enqueue does. An error sets the status of the
// batch's span, and of the span of each message whose enqueue it leaves
// unknown, to Error.
func (p *Producer) EnqueueMany(ctx context.Context, queue string, reqs ...mq.EnqueueRequest) ([]mq.EnqueueResult, error) {
	ctx, span := p.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(baseAttrs(queue),
			semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("send"),
			semconv.MessagingBatchMessageCount(len(reqs)))...))
	defer span.End()

	creates := make([]trace.Span, len(reqs))
	traced := make([]mq.EnqueueRequest, len(reqs))
	for i, r := range reqs {
		cctx, cs := p.tracer.Start(ctx, "create "+queue, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(createAttrs(queue, r.Options)...))
		creates[i] = cs
		traced[i] = mq.EnqueueRequest{Message: r.Message, Options: p.inject(cctx, r.Options)}
	}
	res, err := p.enqueueMany(ctx, queue, traced)
	for i, cs := range creates {
		var r mq.EnqueueResult
		if i < len(res) {
			r = res[i]
		}
		switch {
		case r.Action != "" || r.Refused != nil: // known, even beside an error
			cs.SetAttributes(resultAttrs(r)...)
		case err != nil: // unknown: it may or may not have been applied
			if r.MessageID != "" {
				cs.SetAttributes(semconv.MessagingMessageID(r.MessageID))
			}
			cs.SetStatus(codes.Error, err.Error())
		}
		cs.End()
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return res, err
}

// inject answers a copy of opts whose metadata holds ctx's trace context.
func (p *Producer) inject(ctx context.Context, opts *mq.EnqueueOptions) *mq.EnqueueOptions {
	var o mq.EnqueueOptions
	if opts != nil {
		o = *opts
	}
	carrier := propagation.MapCarrier(maps.Clone(o.Metadata))
	if carrier == nil {
		carrier = propagation.MapCarrier{}
	}
	p.prop.Inject(ctx, carrier)
	if len(carrier) > 0 {
		o.Metadata = carrier
	}
	return &o
}

func sendAttrs(queue string, opts *mq.EnqueueOptions) []attribute.KeyValue {
	a := append(baseAttrs(queue), semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("send"))
	return withID(a, opts)
}

func createAttrs(queue string, opts *mq.EnqueueOptions) []attribute.KeyValue {
	a := append(baseAttrs(queue), semconv.MessagingOperationTypeCreate, semconv.MessagingOperationName("create"))
	return withID(a, opts)
}

// withID adds the message id when the caller gave one; a generated id is
// known only from the result.
func withID(a []attribute.KeyValue, opts *mq.EnqueueOptions) []attribute.KeyValue {
	if opts != nil && opts.MessageID != "" {
		a = append(a, semconv.MessagingMessageID(opts.MessageID))
	}
	return a
}

func resultAttrs(res mq.EnqueueResult) []attribute.KeyValue {
	a := []attribute.KeyValue{semconv.MessagingMessageID(res.MessageID)}
	if res.Refused != nil {
		return append(a, EnqueueActionKey.String("refused"), RefusedKey.String(res.Refused.Error()))
	}
	return append(a, EnqueueActionKey.String(string(res.Action)))
}

package mqotel

import (
	"github.com/gocarmine/mq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of this package's tracers and
// meters.
const ScopeName = "github.com/gocarmine/mq/mqotel"

// System is the value of the messaging.system attribute on every span and
// metric of this package.
const System = "carmine_mq"

// Attribute keys of this package beyond the semantic conventions.
const (
	// AttemptKey is the handling's attempt number (mq.Message.Attempt),
	// from 1.
	AttemptKey = attribute.Key("messaging.carmine_mq.message.attempt")
	// OutcomeKey is a handling's outcome, as mq.Outcome names it:
	// succeeded, retried, failed (a failure to be retried), dead (a
	// failure that makes the message a dead letter) or abandoned (a
	// failure after the handler's context ended: the message stays
	// locked).
	OutcomeKey = attribute.Key("messaging.carmine_mq.outcome")
	// EnqueueActionKey is what an enqueue did (mq.Action: added or
	// updated), or "refused".
	EnqueueActionKey = attribute.Key("messaging.carmine_mq.enqueue.action")
	// RefusedKey is why the queue refused an enqueue (the text of
	// mq.EnqueueResult.Refused); absent when it took effect.
	RefusedKey = attribute.Key("messaging.carmine_mq.enqueue.refused")
	// StateKey is the state a queue gauge counts: queued, locked, backoff,
	// done or dead.
	StateKey = attribute.Key("messaging.carmine_mq.state")
	// PriorityKey is the priority a queue gauge counts: high or low.
	PriorityKey = attribute.Key("messaging.carmine_mq.priority")
)

// Option configures a [Producer], a [Handler], a [MetricsObserver] or
// [RegisterQueueGauges]. Each takes the options that concern it and
// ignores the rest.
type Option func(*config)

type config struct {
	tp          trace.TracerProvider
	mp          metric.MeterProvider
	prop        propagation.TextMapPropagator
	maxAttempts int
	link        bool
}

func newConfig(opts []Option) config {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return c
}

func (c *config) tracer() trace.Tracer {
	return c.tp.Tracer(ScopeName, trace.WithInstrumentationVersion(mq.Version))
}

func (c *config) meter() metric.Meter {
	return c.mp.Meter(ScopeName, metric.WithInstrumentationVersion(mq.Version))
}

// WithTracerProvider sets the provider of the spans' tracer. Default: the
// global one (otel.GetTracerProvider), read when the Producer or Handler
// is made.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets the provider of the metrics' meter. Default: the
// global one (otel.GetMeterProvider), read when the MetricsObserver or
// the gauges are made.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPropagator sets how a trace context is written into a message's
// metadata and read back. Default: the global one
// (otel.GetTextMapPropagator), read when the Producer or Handler is made.
// Note that the SDK's default global propagator propagates nothing: set
// one (propagation.TraceContext{}, say) globally or here, on both sides.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

// WithMaxAttempts overrides the retry bound a Handler reads from each
// message (mq.Message.MaxAttempts, the worker's WorkerConfig.MaxAttempts),
// by which its span tells a failure that makes the message a dead letter
// (the last attempt) from one to be retried; negative: unlimited. Default:
// the message's.
func WithMaxAttempts(n int) Option {
	return func(c *config) { c.maxAttempts = n }
}

// WithLinkedTrace makes a Handler start each handling's span in a trace
// of its own, linked to the producer's span, instead of as its child.
// That suits queues whose messages wait long or are retried often, where
// one trace per request would grow for hours. Default: a child span.
func WithLinkedTrace() Option {
	return func(c *config) { c.link = true }
}

// baseAttrs are the attributes of every span and metric of queue.
func baseAttrs(queue string) []attribute.KeyValue {
	return []attribute.KeyValue{semconv.MessagingSystemKey.String(System), semconv.MessagingDestinationName(queue)}
}

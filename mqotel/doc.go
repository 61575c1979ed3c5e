// Package mqotel instruments github.com/gocarmine/mq with OpenTelemetry:
// spans for enqueues and handlings, joined by a trace context that travels
// in the message's metadata (mq.EnqueueOptions.Metadata, stored beside the
// content, so a Carmine worker still reads the content it expects), and
// metrics through the OTel metric API as an alternative to the mqprom
// module's Prometheus collectors.
//
// A [Producer] wraps an mq.Client's Enqueue and EnqueueMany: each message
// gets a span of kind Producer whose context is injected, with the
// configured propagator (W3C traceparent and tracestate by default), into
// the message's metadata. [Handler] wraps an mq.Handler: it extracts that
// context and runs the handler in a span of kind Consumer, a child of the
// producer's span, which records the attempt and the outcome. A
// [MetricsObserver] is an mq.Observer that records handling and queueing
// times and counts handlings, and [RegisterQueueGauges] reports every
// queue's counts by state, read from Redis, as observable gauges.
//
// Span, attribute and metric names are listed in the module's README.
// Attribute names follow the OpenTelemetry messaging semantic conventions
// (semconv v1.43.0) where one fits; the rest are under messaging.carmine_mq.
package mqotel

package mqotel

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq"
)

// Middleware is [Handler] as an mq.Middleware, for
// mq.WorkerConfig.Middleware: each handling runs in a span, as Handler
// describes. It takes Handler's options. Put it first in the list, so that
// the span covers the other middleware too.
func Middleware(opts ...Option) mq.Middleware {
	return func(next mq.Handler) mq.Handler { return Handler(next, opts...) }
}

// EnqueueMiddleware is a [Producer] as an mq.EnqueueMiddleware, for
// mq.Config.EnqueueMiddleware: every Enqueue and EnqueueMany of the client
// (and of an mq.Producer on it) runs in spans and carries its trace
// context in the message's metadata, as Producer's do, without the code
// that enqueues having to use a Producer. An Enqueue, or an EnqueueMany of
// one message, gets Producer.Enqueue's span; more messages get
// Producer.EnqueueMany's. It takes the options WithTracerProvider and
// WithPropagator. Do not enqueue through a Producer on a client with this
// middleware too: each message would be traced twice.
func EnqueueMiddleware(opts ...Option) mq.EnqueueMiddleware {
	c := newConfig(opts)
	return func(next mq.EnqueueFunc) mq.EnqueueFunc {
		p := &Producer{tracer: c.tracer(), prop: c.prop, next: next}
		return func(ctx context.Context, queue string, reqs []mq.EnqueueRequest) ([]mq.EnqueueResult, error) {
			if len(reqs) == 1 {
				r, err := p.Enqueue(ctx, queue, reqs[0].Message, reqs[0].Options)
				return []mq.EnqueueResult{r}, err
			}
			return p.EnqueueMany(ctx, queue, reqs...)
		}
	}
}

// enqueue enqueues one message with the client, or with next.
func (p *Producer) enqueue(ctx context.Context, queue string, msg any, opts *mq.EnqueueOptions) (mq.EnqueueResult, error) {
	if p.next == nil {
		return p.client.Enqueue(ctx, queue, msg, opts)
	}
	rs, err := p.next(ctx, queue, []mq.EnqueueRequest{{Message: msg, Options: opts}})
	if len(rs) != 1 {
		if err == nil {
			err = fmt.Errorf("mqotel: enqueue answered %d results for 1 message", len(rs))
		}
		return mq.EnqueueResult{}, err
	}
	return rs[0], err
}

// enqueueMany enqueues messages with the client, or with next.
func (p *Producer) enqueueMany(ctx context.Context, queue string, reqs []mq.EnqueueRequest) ([]mq.EnqueueResult, error) {
	if p.next == nil {
		return p.client.EnqueueMany(ctx, queue, reqs...)
	}
	return p.next(ctx, queue, reqs)
}

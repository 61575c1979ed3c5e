package mq

import (
	"context"
	"fmt"
)

// Middleware wraps a [Handler] in another: code that runs around every
// handling, such as tracing, metrics, logging or recovering state. The
// returned Handler gets the message first and decides whether and how to
// call next; what it returns is the handling's answer (see [Handler]).
type Middleware func(next Handler) Handler

// Chain returns h wrapped in mws, in order: the first is the outermost,
// the first to see a message and the last to see the answer. With no
// middleware it returns h. A nil middleware, or one that returns a nil
// Handler, is an error wrapping ErrInvalidOption.
func Chain(h Handler, mws ...Middleware) (Handler, error) {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] == nil {
			return nil, fmt.Errorf("%w: Middleware[%d] is nil", ErrInvalidOption, i)
		}
		if h = mws[i](h); h == nil {
			return nil, fmt.Errorf("%w: Middleware[%d] returned a nil Handler", ErrInvalidOption, i)
		}
	}
	return h, nil
}

// EnqueueFunc enqueues reqs to queue and answers one result per request,
// in order, as [Client.EnqueueMany] does.
type EnqueueFunc func(ctx context.Context, queue string, reqs []EnqueueRequest) ([]EnqueueResult, error)

// EnqueueMiddleware wraps the client's enqueues ([Config.EnqueueMiddleware]):
// code that runs around every Enqueue and EnqueueMany call, such as
// tracing, metrics, or adding metadata to every message's options. An
// Enqueue arrives as one request. The returned function must answer one
// result per request it was given, in order; it may change the requests
// (copy an Options before changing it: it is the caller's) or refuse the
// call with an error without calling next.
type EnqueueMiddleware func(next EnqueueFunc) EnqueueFunc

// chainEnqueue wraps f in mws, the first outermost.
func chainEnqueue(f EnqueueFunc, mws []EnqueueMiddleware) (EnqueueFunc, error) {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] == nil {
			return nil, fmt.Errorf("%w: EnqueueMiddleware[%d] is nil", ErrInvalidOption, i)
		}
		if f = mws[i](f); f == nil {
			return nil, fmt.Errorf("%w: EnqueueMiddleware[%d] returned a nil function", ErrInvalidOption, i)
		}
	}
	return f, nil
}

// enqueueDirect enqueues without middleware: one request as Enqueue does,
// others as EnqueueMany does. It is the innermost of the enqueue chain.
func (c *Client) enqueueDirect(ctx context.Context, queue string, reqs []EnqueueRequest) ([]EnqueueResult, error) {
	if len(reqs) == 1 {
		r, err := c.enqueueOne(ctx, queue, reqs[0].Message, reqs[0].Options)
		return []EnqueueResult{r}, err
	}
	return c.enqueueMany(ctx, queue, reqs...)
}

// enqueueThrough is Enqueue through the enqueue middleware.
func (c *Client) enqueueThrough(ctx context.Context, queue string, msg any, opts *EnqueueOptions) (EnqueueResult, error) {
	rs, err := c.enqueueVia(ctx, queue, []EnqueueRequest{{Message: msg, Options: opts}})
	if len(rs) != 1 {
		if err == nil {
			err = fmt.Errorf("mq: enqueue middleware answered %d results for 1 message", len(rs))
		}
		return EnqueueResult{}, err
	}
	return rs[0], err
}

// enqueueManyThrough is EnqueueMany through the enqueue middleware.
func (c *Client) enqueueManyThrough(ctx context.Context, queue string, reqs []EnqueueRequest) ([]EnqueueResult, error) {
	rs, err := c.enqueueVia(ctx, queue, reqs)
	if err == nil && len(rs) != len(reqs) {
		return rs, fmt.Errorf("mq: enqueue middleware answered %d results for %d messages", len(rs), len(reqs))
	}
	return rs, err
}

package mq

import "fmt"

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

package mq

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/require"
)

// Middleware runs in order, the first outermost, around the handler, and
// its answer is the handling's.
func TestMiddlewareOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t, queuetest.MiniServer(t), nil)
	enqueue(t, c, "mw", "x", &EnqueueOptions{MessageID: "m"})

	var mu sync.Mutex
	var trail []string
	note := func(s string) { mu.Lock(); trail = append(trail, s); mu.Unlock() }
	named := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, m *Message) error {
				note(name + ">")
				err := next.Handle(ctx, m)
				note("<" + name)
				return err
			})
		}
	}
	w, err := c.NewWorker("mw", &WorkerConfig{
		MaxAttempts: 5,
		Handler: HandlerFunc(func(context.Context, *Message) error {
			note("handler")
			return errors.New("handler failed")
		}),
		Middleware: []Middleware{named("a"), named("b"), func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, m *Message) error {
				_ = next.Handle(ctx, m)
				return Final(errors.New("middleware says dead")) // overrides the handler's answer
			})
		}},
	})
	require.NoError(t, err)
	ev := subscribe(t, w, EventHandled)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, OutcomeDead, waitHandled(t, ev, "m", 1))
	mu.Lock()
	require.Equal(t, []string{"a>", "b>", "handler", "<b", "<a"}, trail)
	mu.Unlock()
}

// A panic in a middleware is recovered as a handler's panic is: a failure.
func TestMiddlewarePanicRecovered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t, queuetest.MiniServer(t), nil)
	enqueue(t, c, "mw", "x", &EnqueueOptions{MessageID: "m"})
	w, err := c.NewWorker("mw", &WorkerConfig{
		MaxAttempts: 1,
		Handler:     nopHandler,
		Middleware: []Middleware{func(Handler) Handler {
			return HandlerFunc(func(context.Context, *Message) error { panic("oops") })
		}},
	})
	require.NoError(t, err)
	ev := subscribe(t, w, EventHandled)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, OutcomeDead, waitHandled(t, ev, "m", 1))
}

func TestMiddlewareChainBadInput(t *testing.T) {
	t.Parallel()
	c := newClient(t, queuetest.MiniServer(t), nil)
	_, err := c.NewWorker("q", &WorkerConfig{Handler: nopHandler, Middleware: []Middleware{nil}})
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = c.NewWorker("q", &WorkerConfig{Handler: nopHandler, Middleware: []Middleware{func(Handler) Handler { return nil }}})
	require.ErrorIs(t, err, ErrInvalidOption)
	h, err := Chain(nopHandler)
	require.NoError(t, err)
	require.NotNil(t, h)
}

// Enqueue middleware runs in order, the first outermost, around Enqueue,
// EnqueueMany and a Producer's enqueues; what it changes is what is
// enqueued, and a middleware that refuses writes nothing.
func TestMiddlewareEnqueue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var trail []string
	named := func(name string) EnqueueMiddleware {
		return func(next EnqueueFunc) EnqueueFunc {
			return func(ctx context.Context, q string, reqs []EnqueueRequest) ([]EnqueueResult, error) {
				trail = append(trail, name+">"+q)
				rs, err := next(ctx, q, reqs)
				trail = append(trail, "<"+name)
				return rs, err
			}
		}
	}
	refused := errors.New("refused")
	stamp := func(next EnqueueFunc) EnqueueFunc {
		return func(ctx context.Context, q string, reqs []EnqueueRequest) ([]EnqueueResult, error) {
			if q == "closed" {
				return nil, refused
			}
			out := make([]EnqueueRequest, len(reqs))
			for i, r := range reqs {
				var o EnqueueOptions
				if r.Options != nil {
					o = *r.Options
				}
				o.Metadata = map[string]string{"stamped": "yes"}
				out[i] = EnqueueRequest{Message: r.Message, Options: &o}
			}
			return next(ctx, q, out)
		}
	}
	s := queuetest.MiniServer(t)
	c := newClient(t, s, &Config{EnqueueMiddleware: []EnqueueMiddleware{named("a"), named("b"), stamp}})

	opts := &EnqueueOptions{MessageID: "one"}
	res, err := c.Enqueue(ctx, "mw", "x", opts)
	require.NoError(t, err)
	require.Equal(t, "one", res.MessageID)
	require.Nil(t, opts.Metadata, "the caller's options were changed")
	require.Equal(t, []string{"a>mw", "b>mw", "<b", "<a"}, trail)

	trail = nil
	rs, err := c.EnqueueMany(ctx, "mw", EnqueueRequest{Message: "y", Options: &EnqueueOptions{MessageID: "two"}},
		EnqueueRequest{Message: "z", Options: &EnqueueOptions{MessageID: "three"}})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	require.Equal(t, "three", rs[1].MessageID)
	require.Equal(t, []string{"a>mw", "b>mw", "<b", "<a"}, trail)

	p, err := NewProducer[string](c, "mw")
	require.NoError(t, err)
	_, err = p.Enqueue(ctx, "w", &EnqueueOptions{MessageID: "four"})
	require.NoError(t, err)

	_, err = c.Enqueue(ctx, "closed", "x", &EnqueueOptions{MessageID: "no"})
	require.ErrorIs(t, err, refused)
	_, err = c.EnqueueMany(ctx, "closed", EnqueueRequest{Message: "x"})
	require.ErrorIs(t, err, refused)
	require.Equal(t, StatusNone, statusOf(t, c, "closed", "no"))

	got := map[string]string{}
	_, calls := startWorker(t, c, "mw", WorkerConfig{Middleware: []Middleware{func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			got[m.ID] = m.Metadata["stamped"] // calls below orders this write before the read
			return next.Handle(ctx, m)
		})
	}}}, nil)
	for range 4 {
		next(t, calls)
	}
	require.Equal(t, map[string]string{"one": "yes", "two": "yes", "three": "yes", "four": "yes"}, got)
}

func TestMiddlewareEnqueueBadInput(t *testing.T) {
	t.Parallel()
	s := queuetest.MiniServer(t)
	_, err := New(s.RDB, &Config{EnqueueMiddleware: []EnqueueMiddleware{nil}})
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = New(s.RDB, &Config{EnqueueMiddleware: []EnqueueMiddleware{func(EnqueueFunc) EnqueueFunc { return nil }}})
	require.ErrorIs(t, err, ErrInvalidOption)

	// A middleware that loses results is an error, not a zero result.
	c := newClient(t, s, &Config{EnqueueMiddleware: []EnqueueMiddleware{func(next EnqueueFunc) EnqueueFunc {
		return func(ctx context.Context, q string, reqs []EnqueueRequest) ([]EnqueueResult, error) {
			rs, err := next(ctx, q, reqs)
			return rs[:0], err
		}
	}}})
	_, err = c.Enqueue(t.Context(), "q", "x", nil)
	require.Error(t, err)
	_, err = c.EnqueueMany(t.Context(), "q", EnqueueRequest{Message: "x"}, EnqueueRequest{Message: "y"})
	require.Error(t, err)
}

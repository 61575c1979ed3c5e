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

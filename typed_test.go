package mq

import (
	"context"
	"errors"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/require"
)

type typedEmail struct {
	To      string
	Subject string
}

// A Producer[T] and a HandleTyped[T] handler agree on T: the handler gets
// the value the producer enqueued, decoded, with its message.
func TestTypedRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t, queuetest.MiniServer(t), nil)
	p, err := NewProducer[typedEmail](c, "typed")
	require.NoError(t, err)
	_, err = p.Enqueue(ctx, typedEmail{To: "ada@example.com", Subject: "hi"}, &EnqueueOptions{MessageID: "one"})
	require.NoError(t, err)
	res, err := p.EnqueueMany(ctx,
		TypedRequest[typedEmail]{Message: typedEmail{To: "bob@example.com"}, Options: &EnqueueOptions{MessageID: "two"}},
		TypedRequest[typedEmail]{Message: typedEmail{To: "cy@example.com"}, Options: &EnqueueOptions{MessageID: "three"}})
	require.NoError(t, err)
	require.Len(t, res, 2)

	got := make(chan string, 3)
	w, err := c.NewWorker("typed", &WorkerConfig{Handler: HandleTyped(func(ctx context.Context, m *Message, e typedEmail) error {
		got <- m.ID + " " + e.To + " " + e.Subject
		return nil
	})})
	require.NoError(t, err)
	ev := subscribe(t, w, EventHandled)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Close() })
	waitAllSucceeded(t, ev, "one", "two", "three")
	close(got)
	var all []string
	for s := range got {
		all = append(all, s)
	}
	require.ElementsMatch(t, []string{"one ada@example.com hi", "two bob@example.com ", "three cy@example.com "}, all)
}

// A message that does not decode into T never reaches the handler and is
// made a dead letter on its first attempt, with ErrUndecodable's text,
// though attempts are left. On a real Redis: the burial is outcome.lua's.
func TestTypedUndecodableIsDeadAtOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t, queuetest.RealServer(t), nil)
	enqueue(t, c, "typed", "not an email", &EnqueueOptions{MessageID: "bad"})

	called := make(chan struct{}, 1)
	var seen error
	w, err := c.NewWorker("typed", &WorkerConfig{
		MaxAttempts: 5,
		Handler: HandleTyped(func(context.Context, *Message, typedEmail) error {
			called <- struct{}{}
			return nil
		}),
		Middleware: []Middleware{func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, m *Message) error {
				err := next.Handle(ctx, m)
				seen = err
				return err
			})
		}},
	})
	require.NoError(t, err)
	ev := subscribe(t, w, EventHandled)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, OutcomeDead, waitHandled(t, ev, "bad", 1))
	require.Empty(t, called, "the handler ran on an undecodable message")
	require.ErrorIs(t, seen, ErrUndecodable)
	require.ErrorIs(t, seen, ErrDecode)
	require.ErrorIs(t, seen, ErrFinal)

	p, err := c.Inspector().DeadLetters(ctx, "typed", "", 10)
	require.NoError(t, err)
	require.Len(t, p.Items, 1)
	require.Equal(t, "bad", p.Items[0].ID)
	require.Equal(t, int64(1), p.Items[0].Attempts)
	require.Contains(t, p.Items[0].Error, ErrUndecodable.Error())
}

// The typed handler's own answers pass through unchanged.
func TestTypedHandlerAnswers(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	h := HandleTyped(func(_ context.Context, _ *Message, n int) error {
		if n == 0 {
			return boom
		}
		return nil
	})
	msg := func(v any) *Message {
		data, err := MsgpackCodec{}.Marshal(v)
		require.NoError(t, err)
		return &Message{Data: data, codec: MsgpackCodec{}}
	}
	require.NoError(t, h.Handle(context.Background(), msg(7)))
	err := h.Handle(context.Background(), msg(0))
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, ErrFinal)
	require.NotErrorIs(t, err, ErrUndecodable)
	require.ErrorIs(t, h.Handle(context.Background(), msg("seven")), ErrUndecodable)
}

func TestTypedBadInput(t *testing.T) {
	t.Parallel()
	c := newClient(t, queuetest.MiniServer(t), nil)
	_, err := NewProducer[int](c, "")
	require.Error(t, err)
	_, err = NewProducer[int](nil, "q")
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = c.NewWorker("q", &WorkerConfig{Handler: HandleTyped[int](nil)})
	require.ErrorIs(t, err, ErrInvalidOption)
}

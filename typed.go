package mq

import (
	"context"
	"errors"
	"fmt"
)

// ErrUndecodable marks the failure of a typed handler ([HandleTyped]) whose
// message the client's codec could not decode into the handler's type.
// Such a failure is final: the message is not retried (a retry would
// decode the same bytes the same way) but made a dead letter at once, its
// error text saying why. The error also wraps ErrDecode, with the codec's
// own error, and ErrFinal.
var ErrUndecodable = errors.New("mq: undecodable message")

// TypedHandlerFunc handles a message decoded into T: msg is the message
// as stored (its ID, Attempt, Metadata, ...), v its decoded value. Its
// answers are a [Handler]'s.
type TypedHandlerFunc[T any] func(ctx context.Context, msg *Message, v T) error

// HandleTyped returns a [Handler] that decodes each message into a T with
// the client's codec ([Config.Codec]) before calling fn. T may be a struct,
// a map, a slice, a pointer or a basic type, as the codec allows.
//
// A message that does not decode never reaches fn: the handling fails
// with an error wrapping [ErrUndecodable], [ErrDecode] and [ErrFinal], so
// the message is made a dead letter at once, whatever attempts are left,
// with the decode error as its reason (Inspector.DeadLetters). This is an
// ordinary final failure in the protocol's terms (docs/protocol.md §6): a
// Carmine worker on the same queue sees nothing new.
func HandleTyped[T any](fn TypedHandlerFunc[T]) Handler {
	if fn == nil {
		return nil // refused by WorkerConfig's check: Handler is nil
	}
	return typedHandler[T](fn)
}

type typedHandler[T any] TypedHandlerFunc[T]

func (h typedHandler[T]) Handle(ctx context.Context, msg *Message) error {
	var v T
	if err := msg.Decode(&v); err != nil {
		return Final(fmt.Errorf("%w into %T: %w", ErrUndecodable, v, err))
	}
	return h(ctx, msg, v)
}

// Producer enqueues messages of type T to one queue: a typed face of
// [Client.Enqueue] and [Client.EnqueueMany], so that a producer and a
// [HandleTyped] handler of the same T agree on the message's type at
// compile time. The zero Producer is not usable: make one with
// [NewProducer]. A Producer is safe for concurrent use.
type Producer[T any] struct {
	c     *Client
	queue string
}

// NewProducer returns a producer of T messages to queue through c. It
// fails when the queue's name is not valid ([ValidateQueueName]).
func NewProducer[T any](c *Client, queue string) (*Producer[T], error) {
	if c == nil {
		return nil, fmt.Errorf("%w: client is nil", ErrInvalidOption)
	}
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	return &Producer[T]{c: c, queue: queue}, nil
}

// Queue returns the producer's queue.
func (p *Producer[T]) Queue() string { return p.queue }

// Enqueue enqueues msg to the producer's queue, as [Client.Enqueue] does.
func (p *Producer[T]) Enqueue(ctx context.Context, msg T, opts *EnqueueOptions) (EnqueueResult, error) {
	return p.c.Enqueue(ctx, p.queue, msg, opts)
}

// TypedRequest is one message of [Producer.EnqueueMany].
type TypedRequest[T any] struct {
	// Message is the message to enqueue.
	Message T
	// Options are its options; nil for the defaults.
	Options *EnqueueOptions
}

// EnqueueMany enqueues many messages to the producer's queue in one round
// trip, as [Client.EnqueueMany] does, with its results and errors.
func (p *Producer[T]) EnqueueMany(ctx context.Context, reqs ...TypedRequest[T]) ([]EnqueueResult, error) {
	rs := make([]EnqueueRequest, len(reqs))
	for i, r := range reqs {
		rs[i] = EnqueueRequest{Message: r.Message, Options: r.Options}
	}
	return p.c.EnqueueMany(ctx, p.queue, rs...)
}

package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
)

// Results (docs/protocol.md §21). A handler may give a result with its
// success ([Message.SetResult], or a [HandleTypedResult] handler's return
// value): the outcome script that records the success keeps it in the
// queue's results, in the same step, so a lost reply, a resent outcome or a
// crash never loses a recorded result nor writes it twice, and a success
// that comes after the lock was lost writes none. Any process reads it by
// id ([Inspector.Result]) or waits for it ([Client.WaitResult]): request
// and reply over a queue. Each queue keeps at most
// WorkerConfig.ResultMaxCount results, none older than ResultMaxAge,
// dropping the oldest as new ones come. DeleteMessage and ClearQueues
// remove results; a Carmine worker on the same queue records none.
//
// A message enqueued again under the id of one that succeeded keeps the
// old result until its own success replaces it, but while it is pending
// [Inspector.Result] answers ErrResultPending, not the old result (a
// result recorded no later than the message's first enqueue is an earlier
// message's), and WaitResult waits for the new one.

// The default bounds of a queue's results.
const (
	// DefaultResultMaxCount is how many results a queue keeps.
	DefaultResultMaxCount = 10_000
	// DefaultResultMaxAge is how long a queue keeps a result.
	DefaultResultMaxAge = 24 * time.Hour
)

// Errors of results.
var (
	// ErrNoResult reports that a message has no result and will not get
	// one: it succeeded without one, became a dead letter, was deleted,
	// was never enqueued, or its result was dropped by the bounds.
	ErrNoResult = errors.New("mq: no result")
	// ErrResultPending reports that a message has no result yet: it is
	// queued or being handled.
	ErrResultPending = errors.New("mq: result pending")
)

// resultRecheck is how often WaitResult reads the result again while it
// waits, in case a notice was lost (the subscription's connection broke
// and was made again meanwhile).
const resultRecheck = 5 * time.Second

// Result is the result a handler gave with a message's success. It
// marshals to JSON.
type Result struct {
	// ID is the message id.
	ID string `json:"id"`
	// Data is the result as stored: the codec's encoding, or a [Raw].
	Data []byte `json:"data"`
	// At is when the success was recorded, by the Redis server's clock.
	At time.Time `json:"at"`

	codec Codec
}

// Decode decodes the result into v, a non-nil pointer, with the client's
// codec. An error wraps ErrDecode.
func (r *Result) Decode(v any) error { return decode(r.codec, r.Data, v) }

// SetResult sets the message's result: v encoded with the client's codec
// (a [Raw] is kept as it is). It is recorded with the handler's success (a
// nil answer or [SucceedWithBackoff]), and dropped with any other answer.
// A later call replaces an earlier one; an empty Raw, or nil, sets none.
// An encoding error, or a result larger than Config.MaxMessageSize
// (ErrMessageTooLarge), is returned and leaves the result as it was.
func (m *Message) SetResult(v any) error {
	var data []byte
	switch r := v.(type) {
	case nil:
	case Raw:
		data = r
	default:
		var err error
		if data, err = m.codec.Marshal(v); err != nil {
			return fmt.Errorf("mq: cannot encode the result of %q: %w", m.ID, err)
		}
	}
	if m.maxResult > 0 && len(data) > m.maxResult {
		return fmt.Errorf("%w: a result of %d bytes encoded, the limit is %d", ErrMessageTooLarge, len(data), m.maxResult)
	}
	m.resultMu.Lock()
	m.result = data
	m.resultMu.Unlock()
	return nil
}

// takeResult answers the result set, once the handler returned.
func (m *Message) takeResult() []byte {
	m.resultMu.Lock()
	defer m.resultMu.Unlock()
	if len(m.result) == 0 {
		return nil
	}
	return m.result
}

// TypedResultFunc handles a message decoded into T, as a
// [TypedHandlerFunc] does, and answers its result R with its success.
type TypedResultFunc[T, R any] func(ctx context.Context, msg *Message, v T) (R, error)

// HandleTypedResult returns a [Handler] that decodes each message into a
// T, as [HandleTyped] does, and records fn's result with its success (a
// nil error, or [SucceedWithBackoff]); with any other answer the result is
// dropped. A result the codec cannot encode fails the handling with that
// error.
func HandleTypedResult[T, R any](fn TypedResultFunc[T, R]) Handler {
	if fn == nil {
		return nil // refused by WorkerConfig's check: Handler is nil
	}
	return HandleTyped(func(ctx context.Context, msg *Message, v T) error {
		r, err := fn(ctx, msg, v)
		if oc := outcomeOf(err); oc.failed || oc.name != protocol.OutcomeSuccess {
			return err
		}
		if serr := msg.SetResult(r); serr != nil {
			return serr
		}
		return err
	})
}

// Result answers the result of message id in queue. It answers
// ErrResultPending while the message is queued or being handled, and
// ErrNoResult when it has none and will get none. One script call.
func (in *Inspector) Result(ctx context.Context, queue, id string) (Result, error) {
	if err := in.validateIDIn(queue, id); err != nil {
		return Result{}, err
	}
	return in.c.readResult(ctx, queue, id)
}

func (c *Client) readResult(ctx context.Context, queue, id string) (Result, error) {
	rec, err := within(c, ctx, func(ctx context.Context) (protocol.ResultRecord, error) {
		return protocol.ReadResult(ctx, c.rdb, c.keys(queue), id)
	})
	if err != nil {
		return Result{}, fmt.Errorf("mq: result of %q in %q: %w", id, queue, redisError(err))
	}
	switch {
	case rec.Found:
		return Result{ID: id, Data: rec.Data, At: time.UnixMilli(rec.At), codec: c.cfg.Codec}, nil
	case rec.Pending:
		return Result{}, fmt.Errorf("%w: %q in %q", ErrResultPending, id, queue)
	default:
		return Result{}, fmt.Errorf("%w: %q in %q", ErrNoResult, id, queue)
	}
}

// WaitResult waits for the result of message id in queue, from any
// process, until ctx ends: request and reply over a queue (enqueue, then
// wait). It answers at once when the result is there, ErrNoResult when the
// message finished without one (or is not in the queue), and ctx's error
// when ctx ends first.
//
// It marks the queue as one that uses results (one write, the first time),
// so that every final outcome recorded from then on is published; joins
// the client's subscription to the queue's results channel and waits for
// it to be confirmed; then reads; then waits for the message's notice, so
// that no outcome recorded after the read is missed. The client's waits
// share its one subscription (one connection of rdb's, its workers' cancel
// watch's too), joining a queue's channel with its first wait and leaving
// it a minute after the last ended; should its connection
// break, a notice may be lost while it is made again, so a wait also
// reads again every few seconds, and a read that fails because Redis is
// out of reach (down, restarting, loading its data, frozen) is made
// again so, until ctx ends. It works with a Cluster client too.
func (c *Client) WaitResult(ctx context.Context, queue, id string) (Result, error) {
	if err := ValidateQueueName(queue); err != nil {
		return Result{}, err
	}
	if err := validateMessageID(id); err != nil {
		return Result{}, err
	}
	failed := func(err error) (Result, error) {
		return Result{}, fmt.Errorf("mq: wait for the result of %q in %q: %w", id, queue, err)
	}
	_, err := within(c, ctx, func(ctx context.Context) (bool, error) {
		return c.rdb.HSetNX(ctx, c.key(queue, keys.Features), "results", "1").Result()
	})
	if err != nil {
		return failed(redisError(err))
	}
	// (Not within: a join that went on after its caller gave up would
	// never leave.)
	w, err := c.results.join(ctx, c.key(queue, keys.Results), id)
	if err != nil {
		if ctx.Err() != nil {
			// (the SUBSCRIBE's write deadline is ctx's: an i/o timeout
			// then means the caller's deadline)
			err = fmt.Errorf("%w: %v", ctx.Err(), err)
		}
		return failed(err)
	}
	defer c.results.leave(w)
	recheck := time.NewTicker(resultRecheck)
	defer recheck.Stop()
	for {
		// The subscription is confirmed before each read, so that an
		// outcome recorded after the read is published to it.
		select {
		case <-c.results.ready(w):
		case <-ctx.Done():
			return failed(ctx.Err())
		}
		if c.closed.Load() {
			return failed(ErrClientClosed)
		}
		r, err := c.readResult(ctx, queue, id)
		if !errors.Is(err, ErrResultPending) && !transientRedisError(err) {
			return r, err
		}
		// (pending, or Redis out of reach for now: a wait outlives an
		// outage, read again at the notice or the next recheck)
		select {
		case <-ctx.Done():
			return failed(ctx.Err())
		case <-recheck.C:
		case <-w.notice:
		}
	}
}

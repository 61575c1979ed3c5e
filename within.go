package mq

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// within runs call, which makes Redis calls through c, and returns its
// answer, or ctx's error as soon as ctx's deadline passes, whichever comes
// first. go-redis reads replies with its own timeouts and ignores ctx's
// deadline unless its client was made with ContextTimeoutEnabled, so a
// frozen Redis would otherwise hold a caller long past its deadline. The
// call then runs on a goroutine of its own, and one given up on goes on in
// the background until go-redis returns (ctx ended, so it sends nothing
// again) with its answer dropped: it may still have been applied, which
// the scripts' receipts are there for.
//
// That costs a goroutine and two hand-offs a call, tens of microseconds on
// a busy machine, so the call runs on the caller's goroutine when go-redis
// keeps the deadline itself (ContextTimeoutEnabled), and when ctx has no
// deadline: go-redis then honours a cancellation before it sends and
// between attempts, and its own timeouts bound the rest.
func within[T any](c *Client, ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	if c.direct(ctx) {
		return call(ctx)
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	answer := make(chan result, 1)
	run := func() {
		v, err := call(ctx)
		answer <- result{v, err}
	}
	go run()
	select {
	case r := <-answer:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-answer: // answered just in time
			return r.v, r.err
		default:
			return zero, ctx.Err()
		}
	}
}

// direct tells whether within runs a call with ctx on the caller's
// goroutine: when go-redis keeps ctx's deadline itself, or ctx has none.
func (c *Client) direct(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return !ok || c.keepsDeadlines
}

// keepsDeadlines tells whether rdb applies context deadlines to its reads
// and writes itself (go-redis's ContextTimeoutEnabled).
func keepsDeadlines(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

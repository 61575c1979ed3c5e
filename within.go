package mq

import "context"

// within runs call, which makes Redis calls, and returns its answer, or
// ctx's error as soon as ctx ends, whichever comes first. go-redis reads
// replies with its own timeouts and ignores ctx's deadline unless its
// client was made with ContextTimeoutEnabled (and ignores a cancellation
// in any case), so a frozen Redis would otherwise hold a caller long past
// its deadline. A call given up on goes on in the background until go-redis
// returns (ctx ended, so it sends nothing again) and its answer is
// dropped: it may still have been applied, which the scripts' receipts are
// there for.
//
// The call runs on ctx's runner when it has one that is free (see
// withRunner), else on a goroutine of its own.
func within[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	if ctx.Done() == nil {
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
	if r, ok := ctx.Value(runnerKey{}).(*runner); !ok || !r.try(run) {
		go run()
	}
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

// runner is a goroutine that runs the calls of one polling loop, one after
// the other, so that each call need not start a goroutine of its own (and
// grow its stack through go-redis's depth again).
type runner struct {
	work chan func()
}

type runnerKey struct{}

// withRunner starts a runner for the calls made with the returned context
// (by within); stop ends it once the last call has returned.
func withRunner(ctx context.Context) (_ context.Context, stop func()) {
	r := &runner{work: make(chan func())}
	go func() {
		for f := range r.work {
			f()
		}
	}()
	return context.WithValue(ctx, runnerKey{}, r), func() { close(r.work) }
}

// try hands f to the runner if it is waiting for work; a runner still busy
// with a call given up on is not waited for.
func (r *runner) try(f func()) bool {
	select {
	case r.work <- f:
		return true
	default:
		return false
	}
}

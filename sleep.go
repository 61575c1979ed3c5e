package mq

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// sleepChunk is the longest single blocking call of an end-of-queue sleep.
// Between calls the worker checks whether it is stopping and whether
// messages are ready, so that Stop is prompt and a wake-up missed in a race
// is not missed for long.
const sleepChunk = time.Second

// minEndOfQueueSleep is the shortest end-of-queue sleep, whatever
// EndOfQueueBackoff says, so that an idle worker never polls in a hot loop.
const minEndOfQueueSleep = 10 * time.Millisecond

// sleep is the interruptible sleep of docs/protocol.md §5: a blocking move of the
// sleep sentinel from the list the poll named to the other, which an
// enqueue ends at once by moving the sentinel into that list.
func (w *Worker) sleep(ctx context.Context, s *protocol.Step) {
	ks := w.c.keys(w.queue)
	from, to := ks[keys.ISleepA], ks[keys.ISleepB]
	if s.SleepList == "b" {
		from, to = to, from
	}
	d := s.Sleep
	if !s.UntilDue {
		d = jitter(d)
	}
	if w.c.hub != nil && w.c.hub.sleep(ctx, from, to, d) {
		return
	}
	if s.UntilDue {
		// Wake when the earliest message falls due. Redis ends a blocking
		// call's timeout only when its event loop next wakes, up to 1/hz
		// (100 ms by default) late on an idle server; moving the sentinel
		// onto the list we block on ends it at once, as an enqueue does.
		t := time.AfterFunc(d, func() { w.nudge(ctx, to, from) })
		defer t.Stop()
	}
	deadline := time.Now().Add(d)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		err := w.blockingMove(ctx, from, to, min(left, sleepChunk))
		if err == nil {
			return // woken by an enqueue
		}
		if !errors.Is(err, redis.Nil) {
			return // Redis trouble: let the next poll report it
		}
		n, err := within(w.c, ctx, func(ctx context.Context) (int64, error) {
			return w.c.rdb.LLen(ctx, ks[keys.MidsReady]).Result()
		})
		if err != nil || n > 0 {
			return
		}
	}
}

// nudge moves the sleep sentinel from one isleep list to the other, which
// wakes a worker blocked on the other (this one, or another of the queue's
// sleepers, which will find the same due message).
func (w *Worker) nudge(ctx context.Context, from, to string) {
	if ctx.Err() != nil {
		return // stopping: nobody needs waking
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _ = within(w.c, ctx, func(ctx context.Context) (string, error) {
		return w.c.rdb.RPopLPush(ctx, from, to).Result()
	})
}

// blockingMove moves the sleep sentinel from one list to the other,
// waiting up to d (at most sleepChunk) for it to arrive.
func (w *Worker) blockingMove(ctx context.Context, from, to string, d time.Duration) error {
	_, err := within(w.c, ctx, func(ctx context.Context) (struct{}, error) {
		if d >= time.Second {
			// go-redis reads for the timeout plus its own margin, so the
			// read never times out before Redis answers.
			return struct{}{}, w.c.rdb.BLMove(ctx, from, to, "RIGHT", "LEFT", d.Truncate(time.Second)).Err()
		}
		// go-redis's BLMove sends whole seconds only; below one second,
		// send the fraction. The read then has the client's ReadTimeout
		// (5s by default), above any fraction of a second; a shorter one
		// only cuts the sleep short.
		secs := strconv.FormatFloat(max(d, time.Millisecond).Seconds(), 'f', 3, 64)
		return struct{}{}, w.c.rdb.Do(ctx, "blmove", from, to, "RIGHT", "LEFT", secs).Err()
	})
	return err
}

// sleepCtx sleeps for d or until ctx ends, and answers whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

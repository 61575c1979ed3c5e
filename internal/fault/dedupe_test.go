package fault

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// TestScenarioAppRetryDedupeWindow: issue 19's measure of a producer's
// own retries. The producer's go-redis resends nothing (MaxRetries -1);
// a proxy between it and Redis drops 2% of the enqueue replies after
// Redis applied the call; the application sends each failed enqueue again
// until it is answered, as the docs advise. With a dedupe window
// (UniqueFor), a resend that finds its message queued, being handled, or
// handled already is refused as a duplicate, so no message is handled
// twice. (Without the window, a resend after the handling adds the
// message anew: issue 19 counted 96 of 5,000 handled twice.)
func TestScenarioAppRetryDedupeWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime = 3 * time.Second
	p := h.proxied(19)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	c := h.producer(redis.Options{Addr: p.Addr, MaxRetries: -1, ReadTimeout: 500 * time.Millisecond})
	// The scripts in Redis's cache first, so that drops hit calls that ran.
	h.write(Event{Kind: EnqueueAttempt, ID: "warm-up"})
	res, err := c.Enqueue(context.Background(), queue, "warm-up", &mq.EnqueueOptions{MessageID: "warm-up", UniqueFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.write(Event{Kind: EnqueueAck, ID: "warm-up", Result: answer(res)})
	h.waitFor("the first message to be handled", 30*time.Second, func() bool {
		st, err := h.admin.Inspector().MessageStatus(context.Background(), queue, "warm-up")
		return err == nil && st == mq.StatusDoneWithBackoff
	})

	n, producers := scale(2000, 5000), 8
	p.Set(Rule{Action: Drop, Probability: 0.02, Commands: []string{"evalsha", "eval"}})
	var next, resends, duplicates atomic.Int64
	var wg sync.WaitGroup
	for range producers {
		wg.Add(1)
		h.background(func(ctx context.Context) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				id := fmt.Sprintf("m-%06d", i)
				for try := 0; ctx.Err() == nil; try++ {
					if try > 0 {
						resends.Add(1)
					}
					h.write(Event{Kind: EnqueueAttempt, ID: id})
					callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
					res, err := c.Enqueue(callCtx, queue, id, &mq.EnqueueOptions{MessageID: id, UniqueFor: time.Hour})
					cancel()
					if err != nil {
						h.write(Event{Kind: EnqueueFail, ID: id, Err: err.Error()})
						continue
					}
					if res.Refused != nil {
						duplicates.Add(1)
					}
					h.write(Event{Kind: EnqueueAck, ID: id, Result: answer(res)})
					break
				}
			}
		})
	}
	wg.Wait()
	p.Set(Rule{})

	// Handled messages stay in their windows: the queue is drained when
	// nothing is queued, delayed or locked.
	h.waitFor("the queue to drain", scale(60*time.Second, 180*time.Second), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qc, err := h.admin.Inspector().QueueCounts(ctx, queue)
		return err == nil && qc.Queued == 0 && qc.Backoff == 0 && qc.Locked == 0
	})
	h.stopWorkers()
	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := Check(evs)
	t.Logf("checker's report:\n%s", rep)
	t.Logf("proxy: %+v; %d resends by the application, %d answered duplicate", p.Stats(), resends.Load(), duplicates.Load())
	if p.Stats().Dropped == 0 {
		t.Error("no reply dropped")
	}
	expect(t, rep, append(safe(rep),
		zero("duplicated", rep.Duplicated),
	)...)
}

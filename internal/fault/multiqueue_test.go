package fault

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// TestScenarioMultiQueue: multi-queue worker processes (two queues,
// one pool of handlers) are SIGKILLed and replaced while a proxy drops
// 2% of the replies and a producer feeds both queues. Every message of
// either queue is handled, none lost, and every duplicate is explained:
// each queue's outcomes and renewals go to its own queue from the shared
// handler threads.
func TestScenarioMultiQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	second := queue + ":second"
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = 2*time.Second, true, 5*time.Millisecond
	h.spec.AlsoQueues = []string{second}
	p := h.proxied(5)
	p.Set(Rule{Action: Drop, Probability: 0.02})
	live := []*WorkerProcess{h.startWorker(p.Addr), h.startWorker(p.Addr)}
	prodC := h.producer(redis.Options{Addr: p.Addr})

	n := scale(1500, 15_000)
	var acked atomic.Int64
	done := make(chan struct{})
	h.background(func(ctx context.Context) {
		defer close(done)
		for i := 0; i < n && ctx.Err() == nil; i++ {
			q := queue
			if i%2 == 1 {
				q = second
			}
			id := fmt.Sprintf("m-%06d", i)
			h.write(Event{Kind: EnqueueAttempt, ID: id})
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := prodC.Enqueue(callCtx, q, id, &mq.EnqueueOptions{MessageID: id})
			cancel()
			if err != nil {
				h.write(Event{Kind: EnqueueFail, ID: id, Err: err.Error()})
			} else {
				h.write(Event{Kind: EnqueueAck, ID: id, Result: answer(res)})
				acked.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	kills := scale(3, 20)
	for k := range kills {
		victim := live[k%2]
		h.waitFor("the production to go on", 60*time.Second, func() bool {
			return acked.Load() >= int64((k+1)*n/(kills+1)) && started(victim)
		})
		victim.Kill(t)
		live[k%2] = h.startWorker(p.Addr)
	}
	<-done
	p.Set(Rule{})
	// The harness drains the first queue; the second drains as well.
	h.waitFor("the second queue drained", scale(90*time.Second, 300*time.Second), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := h.admin.Inspector().QueueCounts(ctx, second)
		return err == nil && c.Total == 0 && c.Locked == 0
	})
	rep := h.finish(scale(90*time.Second, 300*time.Second))
	expect(t, rep, append(safe(rep),
		check{"acknowledged", int64(rep.Acked), int64(n)},
		check{"process kills", int64(rep.Faults[ProcessKilled]), int64(kills)},
	)...)
}

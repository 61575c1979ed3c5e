package fault

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScenarioNoFaults: two worker processes, a producer, nothing going wrong.
// Every message is handled exactly once.
func TestScenarioNoFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	n := scale(2000, 50_000)
	prod := h.produce(h.producer(redis.Options{Addr: h.redis.Addr}), "m", n, 2, 2*time.Millisecond)
	prod.wait()
	rep := h.finish(scale(30*time.Second, 120*time.Second))
	expect(t, rep, append(append(safe(rep), leaseKept(rep)...),
		check{"acknowledged", int64(rep.Acked), int64(n)},
		check{"worker exits", int64(rep.WorkerExits), 2},
	)...)
}

// TestScenarioWorkerKills: worker processes are SIGKILLed mid-run and replaced,
// while a producer runs. Locks are short (2 s, renewed), so the messages
// a killed process held come back soon, at their next attempt. Nothing
// acknowledged is lost, and every duplicate is a killed process's.
func TestScenarioWorkerKills(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = 2*time.Second, true, 10*time.Millisecond
	live := []*WorkerProcess{h.startWorker(h.redis.Addr), h.startWorker(h.redis.Addr)}
	n := scale(3000, 30_000)
	prod := h.produce(h.producer(redis.Options{Addr: h.redis.Addr}), "m", n, 2, 5*time.Millisecond)

	kills := scale(4, 40)
	for i := range kills {
		// Kills spread over the production, each of a process that is up.
		victim := live[i%2]
		h.waitFor("the production to go on", 60*time.Second, func() bool {
			return prod.acked.Load() >= int64((i+1)*n/(kills+1)) && started(victim)
		})
		victim.Kill(t)
		live[i%2] = h.startWorker(h.redis.Addr)
	}
	prod.wait()
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	expect(t, rep, append(safe(rep), check{"process kills", int64(rep.Faults[ProcessKilled]), int64(kills)})...)
}

// TestScenarioScriptFlush: SCRIPT FLUSH runs in a loop while producers (one
// message at a time, and in EnqueueMany batches) and workers run. Every
// script call then meets an empty script cache now and then and is sent
// again in full; nothing may be lost or handled twice.
func TestScenarioScriptFlush(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	c := h.producer(redis.Options{Addr: h.redis.Addr})
	n := scale(2000, 20_000)
	prod := h.produce(c, "one", n, 2, 2*time.Millisecond)
	batches := make(chan error, 1)
	h.background(func(ctx context.Context) {
		var err error
		for i := 0; i < n && err == nil && ctx.Err() == nil; i += 20 {
			err = h.enqueueMany(ctx, c, ids("many", i, 20))
			time.Sleep(20 * time.Millisecond)
		}
		batches <- err
	})

	stop := make(chan struct{})
	flushes := make(chan int, 1)
	h.background(func(ctx context.Context) {
		k := 0
		defer func() { flushes <- k }()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			if err := h.rdb.ScriptFlush(ctx).Err(); err == nil {
				h.write(Event{Kind: ScriptFlush})
				k++
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	prod.wait()
	if err := <-batches; err != nil {
		t.Errorf("EnqueueMany: %v", err)
	}
	close(stop)
	t.Logf("%d script flushes", <-flushes)
	rep := h.finish(scale(30*time.Second, 120*time.Second))
	expect(t, rep, append(append(safe(rep), leaseKept(rep)...),
		check{"acknowledged", int64(rep.Acked), int64(2 * n)},
	)...)
}

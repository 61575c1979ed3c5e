package fault

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// TestScenarioLimitsDroppedReplies: as TestScenarioDroppedReplies, on a
// queue with a rate and a concurrency limit (docs/protocol.md §19): a
// poll or outcome applied twice (its reply dropped) must neither lose nor
// duplicate a message, nor count a slot twice or free it twice: once the
// queue drained, no slot is held.
func TestScenarioLimitsDroppedReplies(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime = 3 * time.Second
	ctx := context.Background()
	if err := h.admin.Inspector().SetLimits(ctx, queue, mq.Limits{
		Rate: mq.Rate{N: 1000, Per: time.Second, Burst: 50}, Concurrency: 3,
	}); err != nil {
		t.Fatal(err)
	}
	p := h.proxied(3)
	for range 2 {
		h.startWorker(p.Addr)
	}
	n := scale(2000, 20_000)
	p.Set(Rule{Action: Drop, Probability: 0.02})
	prod := h.produce(h.producer(redis.Options{Addr: p.Addr}), "m", n, 2, 2*time.Millisecond)
	prod.wait()
	p.Set(Rule{})
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	t.Logf("proxy: %+v", p.Stats())
	st, err := h.admin.Inspector().Limits(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rep, append(append(safe(rep), leaseKept(rep)...),
		zero("slots held after the drain", st.SlotsHeld),
	)...)
}

// TestScenarioLimitsRedisFaults: a queue with every limit (docs/protocol.md
// §19) on, a concurrency of 4 and 2 per limit key, a rate and a key rate,
// handled by three worker processes (12 handler threads, so that the
// limits bind) while Redis, under appendfsync always, is frozen (SIGSTOP)
// for twice the lock time and resumed, and later frozen again and SIGKILLed
// while frozen, then restarted on its data after the lock time. From the
// handling history: never more than 4 handlings at once holding a valid
// lock, nor more than 2 of one key; nothing lost, every duplicate
// explained. And the slots of handlings lost across the restart come back:
// the queue drains, and then no slot is held, none counted, none parked.
func TestScenarioLimitsRedisFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "--appendonly", "yes", "--appendfsync", "always")
	lock := 2 * time.Second
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = lock, true, 10*time.Millisecond
	const conc, keyConc, nKeys = 4, 2, 4
	keyOf := func(id string) string {
		i, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
		return "k" + strconv.Itoa(i%nKeys)
	}
	h.limitKey = keyOf
	ctx := context.Background()
	if err := h.admin.Inspector().SetLimits(ctx, queue, mq.Limits{
		Rate:        mq.Rate{N: 300, Per: time.Second, Burst: 10},
		KeyRate:     mq.Rate{N: 100, Per: time.Second, Burst: 5},
		Concurrency: conc, KeyConcurrency: keyConc,
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.startWorker(h.redis.Addr)
	}
	n := scale(1500, 15_000)
	prod := h.produce(h.producer(redis.Options{Addr: h.redis.Addr}), "m", n, 2, 5*time.Millisecond)
	rounds := scale(1, 10)
	for i := range rounds {
		// A freeze past the locks held, then Redis goes on.
		h.waitFor("enqueues before the freeze", 60*time.Second, func() bool {
			return prod.acked.Load() >= int64((2*i+1)*n/(2*rounds+1))
		})
		h.redis.Pause(t)
		h.write(Event{Kind: RedisPaused})
		time.Sleep(2 * lock)
		h.redis.Resume(t)
		h.write(Event{Kind: RedisResumed})
		// A freeze that ends in a SIGKILL: what the AOF holds comes back,
		// the replies and outcomes in flight do not.
		h.waitFor("enqueues before the kill", 60*time.Second, func() bool {
			return prod.acked.Load() >= int64((2*i+2)*n/(2*rounds+1))
		})
		h.redis.Pause(t)
		h.write(Event{Kind: RedisPaused})
		time.Sleep(lock / 2)
		h.redis.Kill(t)
		h.write(Event{Kind: RedisKilled})
		time.Sleep(lock + 500*time.Millisecond)
		h.redis.Restart(t)
		h.write(Event{Kind: RedisRestarted})
	}
	prod.wait()
	rep := h.finish(scale(90*time.Second, 300*time.Second))
	t.Logf("producer: %d acknowledged, %d failed", prod.acked.Load(), prod.failed.Load())

	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	peak, byKey := PeakRunning(evs, keyOf)
	t.Logf("most handlings at once with a valid lock: %d; per key %v", peak, byKey)
	checks := append(safe(rep), check{"handlings at once over the limit", int64(max(0, peak-conc)), 0})
	for _, k := range []string{"k0", "k1", "k2", "k3"} {
		checks = append(checks, check{"handlings of " + k + " at once over its limit", int64(max(0, byKey[k]-keyConc)), 0})
	}
	counts, err := h.admin.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	checks = append(checks, check{"messages left in the queue", counts.Total, 0})
	// Straight from Redis: no slot, no count but the parking sequence (and
	// the queue rate's tat), no
	// parked id.
	slots, err := h.rdb.HKeys(ctx, keys.Key(queue, false, keys.Slots)).Result()
	if err != nil {
		t.Fatal(err)
	}
	slotCounts, err := h.rdb.HGetAll(ctx, keys.Key(queue, false, keys.SlotCounts)).Result()
	if err != nil {
		t.Fatal(err)
	}
	delete(slotCounts, "seq")
	delete(slotCounts, "tq") // (the queue rate's tat, §19)
	parked, err := h.rdb.ZCard(ctx, keys.Key(queue, false, keys.Parked)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) > 0 || len(slotCounts) > 0 {
		t.Logf("after the drain: slots %v, slot counts %v", slots[:min(len(slots), 10)], slotCounts)
	}
	checks = append(checks,
		zero("slots held after the drain", len(slots)),
		zero("slot counts after the drain", len(slotCounts)),
		zero("ids parked after the drain", parked),
	)
	expect(t, rep, checks...)
}

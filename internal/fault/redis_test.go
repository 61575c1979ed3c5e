package fault

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScenarioRedisKill: Redis is SIGKILLed under appendonly with appendfsync
// always, and restarted on its data, while a producer and workers run.
// Every enqueue Redis acknowledged was on disk first, so none is lost.
// The outage outlasts the lock time, so locks held at the kill expire;
// duplicates are handlings whose outcome the outage swallowed.
func TestScenarioRedisKill(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "--appendonly", "yes", "--appendfsync", "always")
	lock := 2 * time.Second
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = lock, true, 5*time.Millisecond
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	n := scale(3000, 30_000)
	prod := h.produce(h.producer(redis.Options{Addr: h.redis.Addr}), "m", n, 2, 3*time.Millisecond)
	kills := scale(2, 20)
	for i := range kills {
		// Kill Redis in full flow: after some more acknowledged enqueues.
		h.waitFor("enqueues before the kill", 60*time.Second, func() bool { return prod.acked.Load() >= int64(500*(i+1)) })
		h.redis.Kill(t)
		h.write(Event{Kind: RedisKilled})
		time.Sleep(lock + 500*time.Millisecond) // the outage, past the locks held
		h.redis.Restart(t)
		h.write(Event{Kind: RedisRestarted})
	}
	prod.wait()
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	expect(t, rep, safe(rep)...)
	t.Logf("producer: %d acknowledged, %d failed", prod.acked.Load(), prod.failed.Load())
}

// TestScenarioRedisPause: Redis is frozen with SIGSTOP for twice the lock time,
// then resumed, while a producer and workers run: locks expire during the
// freeze, so messages may be handed out again, but nothing acknowledged
// is lost and no handling overlaps another while its lock is valid.
// During the freeze, an Enqueue with a 500 ms deadline must give up with
// an error about when its deadline says.
func TestScenarioRedisPause(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	lock := 2 * time.Second
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = lock, true, 5*time.Millisecond
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	c := h.producer(redis.Options{Addr: h.redis.Addr})
	n := scale(3000, 30_000)
	prod := h.produce(c, "m", n, 2, 3*time.Millisecond)
	pauses := scale(1, 10)
	type probe struct {
		took time.Duration
		err  error
	}
	var probes []probe
	for i := range pauses {
		h.waitFor("enqueues before the pause", 60*time.Second, func() bool { return prod.acked.Load() >= int64(700*(i+1)) })
		h.redis.Pause(t)
		h.write(Event{Kind: RedisPaused})
		got := make(chan probe, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := h.enqueue(ctx, c, "probe-"+strconv.Itoa(i))
			got <- probe{time.Since(start), err}
		}()
		time.Sleep(2 * lock) // the freeze
		h.redis.Resume(t)
		h.write(Event{Kind: RedisResumed})
		probes = append(probes, <-got)
	}
	prod.wait()
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	expect(t, rep, safe(rep)...)
	for i, p := range probes {
		t.Logf("Enqueue with a 500ms deadline during pause %d: returned after %v with %v", i+1, p.took.Round(time.Millisecond), p.err)
		// Not a timing threshold: the call must end near its deadline, and
		// 2 s leaves room for a loaded machine; a call that waits for
		// go-redis's own timeouts takes 3 s or more, or the whole pause.
		if p.err == nil || p.took > 2*time.Second {
			t.Errorf("Enqueue with a 500ms deadline while Redis is frozen: returned after %v with error %v; want an error within 2s", p.took, p.err)
		}
	}
}

// TestScenarioOOM: Redis under maxmemory with noeviction, filled past its limit.
// While it is full, enqueues must fail with an error, never be
// acknowledged; workers must go on draining the messages queued before;
// once memory is freed, everything acknowledged is handled.
func TestScenarioOOM(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
	ctx := context.Background()
	c := h.producer(redis.Options{Addr: h.redis.Addr})

	// A backlog, queued while there is room and no worker yet.
	backlog := scale(300, 3000)
	for _, id := range ids("backlog", 0, backlog) {
		if err := h.enqueue(ctx, c, id); err != nil {
			t.Fatal(err)
		}
	}

	// Fill Redis until it refuses writes, then set the limit well below
	// what it uses, so that what the workers free cannot bring it back
	// under.
	filler := strings.Repeat("x", 64<<10)
	var fill int
	for ; ; fill++ {
		err := h.rdb.Set(ctx, "filler:"+strconv.Itoa(fill), filler, 0).Err()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "OOM") {
				t.Fatalf("filling Redis: %v", err)
			}
			break
		}
	}
	used := usedMemory(t, h.rdb)
	if err := h.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used-(2<<20), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	h.write(Event{Kind: OOMBegin, Note: "used_memory " + strconv.FormatInt(used, 10)})
	t.Logf("Redis full: %d filler keys, used_memory %d", fill, used)

	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	full := h.produce(c, "full", scale(200, 2000), 1, 5*time.Millisecond)
	full.wait()
	// The backlog drains while Redis is full, or the test says it did not.
	deadline := time.Now().Add(scale(10*time.Second, 60*time.Second))
	drained := false
	for !drained && time.Now().Before(deadline) {
		evs, err := ReadHistories(h.dir)
		if err != nil {
			t.Fatal(err)
		}
		drained = handledAll(evs, ids("backlog", 0, backlog))
		if !drained {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !drained {
		t.Errorf("the workers did not drain the %d messages queued before Redis was full, while it was full", backlog)
	}

	// Free the memory.
	for i := 0; i < fill; i += 500 {
		keys := make([]string, 0, 500)
		for k := i; k < min(fill, i+500); k++ {
			keys = append(keys, "filler:"+strconv.Itoa(k))
		}
		if err := h.rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.rdb.ConfigSet(ctx, "maxmemory", "8mb").Err(); err != nil {
		t.Fatal(err)
	}
	h.write(Event{Kind: OOMEnd})
	after := h.produce(c, "after", scale(200, 2000), 1, 2*time.Millisecond)
	after.wait()

	// A worker backs off after errors, up to 30 s: the drain allows for it.
	rep := h.finish(scale(60*time.Second, 120*time.Second))
	expect(t, rep, append(safe(rep), zero("enqueues acknowledged while Redis was full", rep.AckedWhileFull))...)
	t.Logf("while full: %d enqueues acknowledged, %d failed", full.acked.Load(), full.failed.Load())
}

// usedMemory reads Redis's used_memory.
func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// handledAll tells whether every one of ids has a completed handling in
// evs.
func handledAll(evs []Event, ids []string) bool {
	open := map[[2]int64]string{}
	done := map[string]bool{}
	for _, e := range evs {
		switch e.Kind {
		case HandleStart:
			open[[2]int64{int64(e.PID), e.Handling}] = e.ID
		case HandleEnd:
			if id, ok := open[[2]int64{int64(e.PID), e.Handling}]; ok {
				done[id] = true
			}
		}
	}
	for _, id := range ids {
		if !done[id] {
			return false
		}
	}
	return true
}

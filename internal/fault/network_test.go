package fault

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// proxied starts a proxy in front of the harness's Redis whose drops and
// delays are written to the test's history.
func (h *harness) proxied(seed uint64) *Proxy {
	p := NewProxy(h.t, h.redis.Addr, seed)
	p.Notify(func(a Action, cmd string) {
		switch a {
		case Drop:
			h.write(Event{Kind: ProxyDrop, Note: cmd})
		case Delay:
			h.write(Event{Kind: ProxyDelay, Note: cmd})
		}
	})
	return p
}

// TestScenarioDroppedReplies: between the library (producer and workers) and
// Redis, a proxy drops 2% of the replies after Redis applied the request.
// go-redis then sends the command again; a script call applied twice must
// change nothing: no message lost, none handled twice, and no worker
// counting a lock lost that it held.
func TestScenarioDroppedReplies(t *testing.T) {
	t.Parallel()
	faultyReplies(t, 1, Rule{Action: Drop, Probability: 0.02}, 0)
}

// TestScenarioDelayedReplies: as TestScenarioDroppedReplies, but the proxy holds 2%
// of the replies past the clients' ReadTimeout, which go-redis takes for a
// failure and sends the command again.
func TestScenarioDelayedReplies(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	faultyReplies(t, 2, Rule{Action: Delay, Probability: 0.02, Delay: 2 * readTimeout}, readTimeout)
}

// faultyReplies runs two workers and a producer through a proxy that
// applies rule to the replies while the messages are enqueued, with the
// clients' read timeout (0 for go-redis's default), and checks that
// nothing was lost, handled twice or counted as a lost lock.
func faultyReplies(t *testing.T, seed uint64, rule Rule, readTimeout time.Duration) {
	h := newHarness(t)
	h.spec.LockTime, h.spec.ReadTimeout = 3*time.Second, readTimeout
	p := h.proxied(seed)
	for range 2 {
		h.startWorker(p.Addr)
	}
	n := scale(2000, 20_000)
	p.Set(rule)
	prod := h.produce(h.producer(redis.Options{Addr: p.Addr, ReadTimeout: readTimeout}), "m", n, 2, 2*time.Millisecond)
	prod.wait()
	p.Set(Rule{})
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	t.Logf("proxy: %+v", p.Stats())
	processed, failed := h.historySums()
	expect(t, rep, append(append(safe(rep), leaseKept(rep)...),
		// Each handling's outcome in the queue's history once, however
		// often its call was sent (docs/protocol.md §17).
		check{"history: processed", processed, int64(rep.Handled)},
		zero("history: failed", failed),
	)...)
}

// historySums adds up the queue's history in Redis (the last day).
func (h *harness) historySums() (processed, failed int64) {
	h.t.Helper()
	ms, err := h.admin.Inspector().History(context.Background(), queue, time.Time{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range ms {
		processed += m.Processed
		failed += m.Failed
	}
	return processed, failed
}

// TestScenarioDroppedEnqueueMany: one EnqueueMany of 3,000 messages through the
// proxy, which drops the reply to the first of its script calls, while
// workers (straight on Redis) handle the messages as they come. go-redis
// sends the whole pipeline again; messages already handled by then must
// not be queued a second time.
func TestScenarioDroppedEnqueueMany(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.HandleFor = 0
	p := h.proxied(3)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	c := h.producer(redis.Options{Addr: p.Addr})
	// One message first, through the proxy: once it is handled, the
	// workers are polling, and the enqueue script is in Redis's cache, so
	// that the drop hits a script call that ran, not a NOSCRIPT answer.
	if err := h.enqueue(context.Background(), c, "warm-up"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the first message to be handled", 30*time.Second, func() bool {
		evs, err := ReadHistories(h.dir)
		return err == nil && handledAll(evs, []string{"warm-up"})
	})
	rounds := scale(1, 5)
	for r := range rounds {
		p.Set(Rule{Action: Drop, Next: 1, Commands: []string{"evalsha", "eval"}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := h.enqueueMany(ctx, c, ids("m", r*3000, 3000))
		t.Logf("EnqueueMany round %d: %v, error %v", r+1, time.Since(start), err)
		cancel()
	}
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	t.Logf("proxy: %+v", p.Stats())
	expect(t, rep, append(safe(rep),
		check{"replies dropped", p.Stats().Dropped, int64(rounds)},
		zero("duplicated", rep.Duplicated),
	)...)
}

// TestScenarioDroppedCoalesced: many goroutines enqueue at once through
// the proxy, so that their calls are coalesced into shared script calls,
// and the proxy drops 5% of the replies to those calls after Redis applied
// them. go-redis sends a coalesced call again; its receipt must answer
// every caller of it as the first application did: every caller answered,
// no acknowledged message lost, none handled twice.
func TestScenarioDroppedCoalesced(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.proxied(4)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	c := h.producer(redis.Options{Addr: p.Addr})
	// The script in Redis's cache first, so that drops hit calls that ran.
	if err := h.enqueue(context.Background(), c, "warm-up"); err != nil {
		t.Fatal(err)
	}
	n, goroutines := scale(3000, 30_000), 32
	p.Set(Rule{Action: Drop, Probability: 0.05, Commands: []string{"evalsha", "eval"}})
	before := p.Stats().Requests
	prod := h.produce(c, "m", n, goroutines, 0)
	prod.wait()
	calls := p.Stats().Requests - before
	p.Set(Rule{})
	rep := h.finish(scale(60*time.Second, 180*time.Second))
	t.Logf("proxy: %+v; %d enqueues in %d script calls (resends included)", p.Stats(), n, calls)
	if calls >= int64(n) {
		t.Errorf("%d script calls for %d enqueues: the calls were not coalesced", calls, n)
	}
	if p.Stats().Dropped == 0 {
		t.Error("no reply dropped")
	}
	expect(t, rep, append(safe(rep),
		check{"callers answered (acknowledged or failed)", prod.acked.Load() + prod.failed.Load(), int64(n)},
		zero("duplicated", rep.Duplicated),
	)...)
}

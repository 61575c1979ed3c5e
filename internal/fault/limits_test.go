package fault

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq"
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
	expect(t, rep, append(safe(rep),
		zero("duplicated", rep.Duplicated),
		zero("LockLost", rep.LockLost),
		zero("slots held after the drain", st.SlotsHeld),
	)...)
}

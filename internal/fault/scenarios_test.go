package fault

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNoFaults: two worker processes, a producer, nothing going wrong.
// Every message is handled exactly once.
func TestNoFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for range 2 {
		h.startWorker(h.redis.Addr)
	}
	n := scale(2000, 50_000)
	prod := h.produce(h.producer(redis.Options{Addr: h.redis.Addr}), "m", n, 2, 2*time.Millisecond)
	prod.wait()
	rep := h.finish(scale(30*time.Second, 120*time.Second))
	expect(t, rep, safe(rep)...)
	expect(t, rep,
		check{"acknowledged", int64(rep.Acked), int64(n)},
		zero("duplicated", rep.Duplicated),
		zero("handler/lock-lost", rep.LockLost),
		check{"worker exits", int64(rep.WorkerExits), 2},
	)
}

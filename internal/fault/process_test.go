package fault

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// errorsTB records the errors a test helper reports, instead of failing
// the test.
type errorsTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *errorsTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestWorkerStopWhileStarting: a worker process stopped at once, while
// the Go runtime and the test framework still start in it, stops cleanly:
// Stop sends SIGTERM only once the process handles it (the poison
// scenario restarts dead workers until the end, and one still starting
// died of the signal's default action). The stopped process wrote its
// counters, as a worker stopped by SIGTERM does.
func TestWorkerStopWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 3
	for range n {
		p := h.startWorker(h.redis.Addr)
		rec := &errorsTB{TB: t}
		p.Stop(rec, 60*time.Second)
		if len(rec.errs) > 0 {
			t.Errorf("worker process %d: %v", p.PID, rec.errs)
		}
	}
	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	exits := 0
	for _, e := range evs {
		if e.Kind == WorkerExit {
			exits++
		}
	}
	if exits != n {
		t.Errorf("%d worker exits written, want %d", exits, n)
	}
}

package fault

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// TestScenarioCancels: cancels of running messages (docs/protocol.md §20)
// sent through a proxy that drops 10% of the replies after Redis applied
// the request (the workers' too), and a worker process SIGKILLed right
// after them, holding half the messages. No cancel is lost: a cancelled
// message never starts again after its cancel returned (the killed
// worker's are collected by the others' polls as cancelled, not retried),
// every cancelled handling of a surviving worker has its context ended,
// no message is retried, failed or buried, and every message not
// cancelled is handled. A cancel may find a handling's lock run out (a
// machine too busy for the renewals to come through in time): it then
// answers CancelRemoved, and that handling's context must have ended by
// its lock's expiry (the HandleEnd's Cause).
func TestScenarioCancels(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = 2*time.Second, true, 6*time.Second
	h.spec.HandlerThreads = 8
	p := h.proxied(20)
	doomed := h.startWorker(p.Addr)
	h.startWorker(p.Addr)
	n := 16
	all := ids("m", 0, n)
	ctx := context.Background()
	for _, id := range all {
		if err := h.enqueue(ctx, h.admin, id); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("every message to start", 60*time.Second, func() bool {
		evs, err := ReadHistories(h.dir)
		if err != nil {
			return false
		}
		startedIDs := map[string]bool{}
		for _, e := range evs {
			if e.Kind == HandleStart {
				startedIDs[e.ID] = true
			}
		}
		return len(startedIDs) == n
	})

	p.Set(Rule{Action: Drop, Probability: 0.1})
	canceller := h.producer(redis.Options{Addr: p.Addr})
	cancelledAt := map[string]time.Time{}
	lapsed := map[string]bool{} // cancels answered CancelRemoved
	for i, id := range all {
		if i%2 == 1 {
			continue
		}
		var r mq.CancelResult
		var err error
		for range 5 { // a reply dropped more often than go-redis resends
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			r, err = canceller.Cancel(callCtx, queue, id)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("cancel %s: %v", id, err)
		}
		switch r {
		case mq.CancelSignalled:
		case mq.CancelRemoved:
			// Its lock had run out: on a busy machine (load ~35) the
			// renewals through the proxy can take a whole lock time. The
			// message is queued then, and the cancel deletes it: it never
			// runs again, as checked below; its handling, still running,
			// must have had its context ended by its lock's expiry.
			lapsed[id] = true
		default:
			t.Fatalf("cancel %s answered %s: the handling ended first (a slow machine?)", id, r)
		}
		cancelledAt[id] = time.Now()
	}
	doomed.Kill(t)
	h.startWorker(p.Addr)
	h.drain(90 * time.Second)
	p.Set(Rule{})
	h.stopWorkers()
	t.Logf("proxy: %+v; %d of %d cancels found the lock run out (removed)", p.Stats(), len(lapsed), len(cancelledAt))

	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	handled := map[string]bool{}
	starts := map[[2]int64]Event{}
	for _, e := range evs {
		switch e.Kind {
		case HandleStart:
			starts[[2]int64{int64(e.PID), e.Handling}] = e
			if at, ok := cancelledAt[e.ID]; ok && e.Time.After(at) {
				t.Errorf("cancelled %s started again at %v, after its cancel returned at %v (attempt %d)", e.ID, e.Time, at, e.Attempt)
			}
		case HandleEnd:
			handled[e.ID] = true
			if _, ok := cancelledAt[e.ID]; ok && !e.Cancelled {
				t.Errorf("a handling of cancelled %s ended with its context still live", e.ID)
			}
			if lapsed[e.ID] && e.Cause != mq.ErrLockExpired.Error() {
				t.Errorf("cancel of %s answered removed, but its running handling's context ended for %q, not its lock's expiry", e.ID, e.Cause)
			}
		}
	}
	for _, id := range all {
		if _, ok := cancelledAt[id]; !ok && !handled[id] {
			t.Errorf("%s, not cancelled, never handled", id)
		}
	}
	var sum mq.Counts
	exits := 0
	for _, e := range evs {
		if e.Kind == WorkerExit && e.Counts != nil {
			exits++
			c := e.Counts
			sum.Cancelled += c.Cancelled
			sum.Skips.Cancelled += c.Skips.Cancelled
			sum.Retried += c.Retried
			sum.Failed += c.Failed
			sum.Dead += c.Dead
			sum.Succeeded += c.Succeeded
		}
	}
	t.Logf("survivors' counts: cancelled %d, collected as cancelled %d, succeeded %d", sum.Cancelled, sum.Skips.Cancelled, sum.Succeeded)
	if exits != 2 {
		t.Errorf("%d worker exits, want 2", exits)
	}
	if sum.Retried+sum.Failed+sum.Dead != 0 {
		t.Errorf("retried %d, failed %d, dead %d: want none", sum.Retried, sum.Failed, sum.Dead)
	}
	// Each cancelled message is settled once, by its handling's outcome
	// or by a poll that collects it; the drained queue below proves that
	// none is left. The counts may fall short: a poll whose reply was
	// dropped is answered from its receipt (§8), which keeps what it
	// handed out, not the steps that collected, so those are not counted.
	if got := sum.Cancelled + sum.Skips.Cancelled; got > int64(len(cancelledAt)) {
		t.Errorf("%d cancels settled (%d handlings, %d collected), want at most %d", got, sum.Cancelled, sum.Skips.Cancelled, len(cancelledAt))
	}
	dead, err := h.rdb.HLen(ctx, fmt.Sprintf("carmine:mq:%s:dead", queue)).Result()
	if err != nil || dead != 0 {
		t.Errorf("dead letters: %d (%v)", dead, err)
	}
	counts, err := h.admin.Inspector().QueueCounts(ctx, queue)
	if err != nil || counts.Total != 0 {
		t.Errorf("queue not drained: %+v (%v)", counts, err)
	}
}

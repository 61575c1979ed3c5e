package fault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestScenarioPoison: three worker processes, restarted when they die,
// 200 normal messages and 3 poison ones whose handler ends the process
// (issue 19: quarantine without innocent victims). The messages a process
// held when it died are suspects, handed out again only alone, to a
// worker holding nothing: so no normal message ends as a dead letter,
// and each poison one is buried after at most 5 deaths (the first, in a
// crowd or not, and the ones alone after it), with 1, 4 and 16 handler
// threads.
func TestScenarioPoison(t *testing.T) {
	t.Parallel()
	for _, threads := range []int{1, 4, 16} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			t.Parallel()
			poisonRun(t, threads)
		})
	}
}

func poisonRun(t *testing.T, threads int) {
	const normal, poison, bound = 200, 3, 5
	h := newHarness(t)
	// Handlings long enough that a poison one's process dies with the
	// others it holds; locks short, so that they come back soon.
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = time.Second, true, 20*time.Millisecond
	h.spec.HandlerThreads, h.spec.PoisonPrefix, h.spec.QuarantineAfter = threads, "poison-", bound

	// Poison among the normal messages, so that polls take them together.
	ctx := context.Background()
	var all []string
	np := 0
	for i, id := range ids("m", 0, normal) {
		if i%(normal/poison) == normal/poison/2 {
			all = append(all, fmt.Sprintf("poison-%d", np))
			np++
		}
		all = append(all, id)
	}
	if err := h.enqueueMany(ctx, h.admin, all); err != nil {
		t.Fatal(err)
	}

	// Three processes, each restarted when it dies.
	deaths := 0
	superCtx, stop := context.WithCancel(ctx)
	var super sync.WaitGroup
	super.Go(func() {
		slots := []*WorkerProcess{h.startWorker(h.redis.Addr), h.startWorker(h.redis.Addr), h.startWorker(h.redis.Addr)}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-superCtx.Done():
				return
			case <-tick.C:
			}
			for i, p := range slots {
				if p.Exited() {
					deaths++
					slots[i] = h.startWorker(h.redis.Addr)
				}
			}
		}
	})
	began := time.Now()
	h.drain(60 * time.Second)
	took := time.Since(began)
	stop()
	super.Wait()
	h.stopWorkers()

	page, err := h.admin.Inspector().DeadLetters(ctx, queue, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	buried := map[string]mq.DeadLetter{}
	for _, d := range page.Items {
		buried[d.ID] = d
	}
	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	type handling struct {
		pid int
		n   int64
	}
	starts, ended := map[string]int{}, map[string]bool{}
	open := map[handling]string{}
	for _, e := range evs {
		switch e.Kind {
		case HandleStart:
			starts[e.ID]++
			open[handling{e.PID, e.Handling}] = e.ID
		case HandleEnd:
			ended[e.ID] = true
			delete(open, handling{e.PID, e.Handling})
		}
	}
	victims := 0 // normal handlings that died with a poison one
	for _, id := range open {
		if !strings.HasPrefix(id, "poison-") {
			victims++
		}
	}

	for id, d := range buried {
		if !strings.HasPrefix(id, "poison-") {
			t.Errorf("normal message %s is a dead letter: %s (%s)", id, d.Reason, d.Error)
		}
	}
	for i := range poison {
		id := fmt.Sprintf("poison-%d", i)
		d, ok := buried[id]
		if !ok {
			t.Errorf("%s is no dead letter (%d deaths)", id, starts[id])
			continue
		}
		if d.Reason != mq.OutcomeQuarantined {
			t.Errorf("%s: dead letter for %s, want quarantined", id, d.Reason)
		}
		if starts[id] < 1 || starts[id] > bound {
			t.Errorf("%s killed its process %d times, want 1 to %d (dead letter: %s)", id, starts[id], bound, d.Error)
		}
	}
	handled := 0
	for _, id := range all {
		if !strings.HasPrefix(id, "poison-") && ended[id] {
			handled++
		}
	}
	if handled != normal {
		t.Errorf("%d of %d normal messages handled", handled, normal)
	}
	t.Logf("handler threads %d: %d process deaths, %d normal handlings died with a poison one, "+
		"%d normal dead letters, poison deaths %d/%d/%d, drained in %v",
		threads, deaths, victims, len(buried)-poison, starts["poison-0"], starts["poison-1"], starts["poison-2"],
		took.Round(time.Millisecond))
}

package fault

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// TestScenarioPriorities: a backlog of low messages, then high and normal
// ones flowing in, while worker processes are SIGKILLed and replaced and
// a proxy drops 2% of the replies after Redis applied the request. Every
// message is handled and none lost (the checker's safe checks); and a
// high message never waits behind the low backlog: between its enqueue
// and its first handling, no more low messages start their first
// handling than the workers could have taken before it was enqueued (each
// process's room, for its two polls in flight), against a backlog many
// times that. A high message whose first hand-out was lost (its process
// killed, or its poll's reply dropped) waits for its lock by design, and
// is not measured.
func TestScenarioPriorities(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = 2*time.Second, true, 10*time.Millisecond
	p := h.proxied(3)
	p.Set(Rule{Action: Drop, Probability: 0.02})
	prodC := h.producer(redis.Options{Addr: p.Addr})
	ctx := context.Background()

	nLow, nHigh := scale(3000, 20_000), scale(60, 600)
	for i := 0; i < nLow; i += 100 {
		if err := h.enqueuePrio(ctx, h.admin, ids("low", i, min(100, nLow-i)), mq.PriorityLow); err != nil {
			t.Fatal(err)
		}
	}
	const procs = 2
	live := []*WorkerProcess{h.startWorker(p.Addr), h.startWorker(p.Addr)}
	h.waitFor("the low backlog under way", 60*time.Second, func() bool {
		return countKindAll(h, HandleStart) >= 100
	})

	// High and normal messages, one of each every 10 ms; two kills among
	// them.
	var acked atomic.Int64
	done := make(chan struct{})
	h.background(func(ctx context.Context) {
		defer close(done)
		for i := 0; i < nHigh && ctx.Err() == nil; i++ {
			for _, pr := range []struct {
				name string
				prio mq.Priority
			}{{"high", mq.PriorityHigh}, {"normal", mq.PriorityNormal}} {
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if h.enqueuePrio(callCtx, prodC, ids(pr.name, i, 1), pr.prio) == nil {
					acked.Add(1)
				}
				cancel()
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	for k := range 2 {
		h.waitFor("the high messages under way", 60*time.Second, func() bool {
			return acked.Load() >= int64(2*nHigh*(k+1)/3) && started(live[k])
		})
		live[k].Kill(t)
		live[k] = h.startWorker(p.Addr)
	}
	<-done
	p.Set(Rule{})
	rep := h.finish(scale(90*time.Second, 300*time.Second))
	expect(t, rep, append(safe(rep),
		check{"acknowledged", int64(rep.Acked), int64(nLow + 2*nHigh)},
		check{"process kills", int64(rep.Faults[ProcessKilled]), 2},
	)...)

	// The waits of the high messages, in low messages started meanwhile.
	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	acks := map[string]time.Time{}
	first := map[string]Event{} // each id's first handling
	var lowStarts []time.Time   // first handlings of low messages, in time order
	for _, e := range evs {
		switch e.Kind {
		case EnqueueAck:
			if _, ok := acks[e.ID]; !ok {
				acks[e.ID] = e.Time
			}
		case HandleStart:
			if _, ok := first[e.ID]; !ok {
				first[e.ID] = e
				if strings.HasPrefix(e.ID, "low-") {
					lowStarts = append(lowStarts, e.Time)
				}
			}
		}
	}
	// Each process may hold its handler threads and its prefetch, for
	// each of its two polls in flight.
	bound := procs * 2 * (h.spec.HandlerThreads + 32)
	measured, behindBacklog, worst := 0, 0, 0
	for i := range nHigh {
		id := ids("high", i, 1)[0]
		s, ok := first[id]
		if !ok || s.Attempt != 1 {
			continue
		}
		measured++
		ahead, after := 0, 0
		for _, at := range lowStarts {
			switch {
			case at.After(acks[id]) && at.Before(s.Time):
				ahead++
			case !at.Before(s.Time):
				after++
			}
		}
		if after > bound {
			behindBacklog++ // a real backlog of low ones was waiting
		}
		worst = max(worst, ahead)
		if ahead > bound {
			t.Errorf("%s waited for %d low messages (bound %d)", id, ahead, bound)
		}
	}
	t.Logf("high messages measured %d of %d, %d of them with over %d low ones still waiting; most low ones started ahead of one: %d",
		measured, nHigh, behindBacklog, bound, worst)
	if behindBacklog < nHigh/2 {
		t.Errorf("only %d of %d high messages met a low backlog: the scenario proves little", behindBacklog, nHigh)
	}
}

// enqueuePrio enqueues ids with priority prio in one EnqueueMany call,
// writing each attempt and answer to the history.
func (h *harness) enqueuePrio(ctx context.Context, c *mq.Client, ids []string, prio mq.Priority) error {
	reqs := make([]mq.EnqueueRequest, len(ids))
	for i, id := range ids {
		h.write(Event{Kind: EnqueueAttempt, ID: id})
		reqs[i] = mq.EnqueueRequest{Message: id, Options: &mq.EnqueueOptions{MessageID: id, Priority: prio}}
	}
	results, err := c.EnqueueMany(ctx, queue, reqs...)
	for i, id := range ids {
		if i < len(results) && (results[i].Action != "" || results[i].Refused != nil) {
			h.write(Event{Kind: EnqueueAck, ID: id, Result: answer(results[i])})
			continue
		}
		msg := "no result"
		if err != nil {
			msg = err.Error()
		}
		h.write(Event{Kind: EnqueueFail, ID: id, Err: msg})
	}
	if err != nil {
		return fmt.Errorf("enqueue %d: %w", len(ids), err)
	}
	return nil
}

// countKindAll counts the events of kind k in every history of the run.
func countKindAll(h *harness, k Kind) int {
	h.mu.Lock()
	ws := append([]*WorkerProcess(nil), h.workers...)
	h.mu.Unlock()
	n := 0
	for _, w := range ws {
		n += countKind(strings.TrimSuffix(w.Log, ".log"), k)
	}
	return n
}

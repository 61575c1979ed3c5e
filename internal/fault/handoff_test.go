package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// drainAll waits until each of queues is empty (nothing waiting, nothing
// locked; done ids in their dedupe windows do not count) and holds no
// hand-off record, as seen straight on Redis, or
// timeout passes; it logs the latter and leaves it to the checker.
func (h *harness) drainAll(timeout time.Duration, queues ...string) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, q := range queues {
			n, err := h.admin.Inspector().QueueCounts(ctx, q)
			k, err2 := h.admin.Inspector().PendingHandoffs(ctx, q)
			if err != nil || err2 != nil || n.Total-n.Done != 0 || n.Locked != 0 || k != 0 {
				why = fmt.Sprintf("%s: %+v, %d hand-offs pending (errors %v, %v)", q, n, k, err, err2)
				break
			}
		}
		cancel()
		if why == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Logf("the queues did not drain within %v: %s", timeout, why)
}

// faultsWhile SIGKILLs one of live worker processes at random, kills times
// while progress() climbs to total, replacing each, and SIGKILLs Redis
// (restarting it on its data, down past lock) redisKills times spread
// among them.
func (h *harness) faultsWhile(live []*WorkerProcess, addr string, kills, redisKills int, lock time.Duration, progress func() int64, total int64) {
	h.t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	every := kills / max(1, redisKills)
	for i := range kills {
		h.waitFor("the run to go on", 120*time.Second, func() bool {
			return progress() >= int64(i+1)*total/int64(kills+1)
		})
		k := rng.IntN(len(live))
		h.waitFor("the victim up", 60*time.Second, func() bool { return started(live[k]) })
		live[k].Kill(h.t)
		live[k] = h.startWorker(addr)
		if redisKills > 0 && i%max(1, every) == every/2 {
			redisKills--
			h.redis.Kill(h.t)
			h.write(Event{Kind: RedisKilled})
			time.Sleep(lock + 500*time.Millisecond)
			h.redis.Restart(h.t)
			h.write(Event{Kind: RedisRestarted})
		}
	}
	// A process still starting when the run ends would die of the
	// SIGTERM that stops it, before it handles the signal.
	for _, p := range live {
		h.waitFor("the replacements up", 60*time.Second, func() bool { return started(p) })
	}
}

// TestScenarioHandoffs: a pipeline of hand-offs (docs/protocol.md §22):
// each message of queue A is handed off to B, and B's to C, by worker
// processes (three, each running a worker per queue) SIGKILLed at random,
// through a proxy that drops 2% of the replies after Redis applied them,
// while Redis, under appendfsync always, is SIGKILLed and restarted.
// Every hand-off is handled, none is enqueued twice: the checker counts 0
// hand-offs lost, 0 duplicated, 0 enqueued again.
func TestScenarioHandoffs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "--appendonly", "yes", "--appendfsync", "always")
	lock := 2 * time.Second
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = lock, true, 2*time.Millisecond
	h.spec.HandlerThreads = 2
	h.spec.Pipeline = []string{queue + "-b", queue + "-c"}
	p := h.proxied(11)
	live := []*WorkerProcess{h.startWorker(p.Addr), h.startWorker(p.Addr), h.startWorker(p.Addr)}
	n := scale(300, 10_000)
	p.Set(Rule{Action: Drop, Probability: 0.02})
	prod := h.produce(h.producer(redis.Options{Addr: p.Addr}), "m", n, 2, 5*time.Millisecond)
	h.faultsWhile(live, p.Addr, scale(3, 30), scale(1, 5), lock, prod.acked.Load, int64(n))
	prod.wait()
	p.Set(Rule{})
	h.drainAll(scale(90*time.Second, 300*time.Second), queue, queue+"-b", queue+"-c")
	rep := h.finish(scale(10*time.Second, 60*time.Second))
	t.Logf("proxy: %+v", p.Stats())
	expect(t, rep, append(safe(rep),
		zero("hand-offs lost", rep.HandoffsLost),
		zero("hand-offs duplicated", rep.HandoffsDuplicated),
		zero("hand-offs enqueued again", rep.HandoffsReenqueued),
		check{"hand-offs handled (two per message)", int64(rep.Handoffs), 2 * int64(rep.Handled-rep.Handoffs)},
	)...)
	// Every hand-off went in the outcome's own script (§22, "In the
	// script": same Redis, plain options): none was ever appended to a
	// queue's handoffs for the relay, which marks the queue's features.
	for _, q := range []string{queue, queue + "-b"} {
		relayed, err := h.rdb.HExists(context.Background(), keys.Key(q, false, keys.Features), "handoffs").Result()
		if err != nil || relayed {
			t.Errorf("queue %s: a hand-off went through the relay (%v)", q, err)
		}
	}
}

// TestScenarioBatch: a batch (docs/protocol.md §22) whose members worker
// processes handle while they are SIGKILLed at random, replies are dropped
// after Redis applied them and Redis is SIGKILLed under appendfsync
// always: its completion is enqueued exactly once (one id, handled at
// attempt 1 once), after every member was handled, with the members'
// counts.
func TestScenarioBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "--appendonly", "yes", "--appendfsync", "always")
	lock := 2 * time.Second
	done := queue + "-done"
	h.spec.LockTime, h.spec.RenewLocks, h.spec.HandleFor = lock, true, 5*time.Millisecond
	h.spec.Extra = []string{done}
	p := h.proxied(13)
	live := []*WorkerProcess{h.startWorker(p.Addr), h.startWorker(p.Addr), h.startWorker(p.Addr)}
	n := scale(500, 10_000)
	c := h.producer(redis.Options{Addr: p.Addr})
	members := make([]mq.BatchMessage, n)
	for i, id := range ids("m", 0, n) {
		members[i] = mq.BatchMessage{Queue: queue, Message: id, Options: &mq.EnqueueOptions{MessageID: id}}
		h.write(Event{Kind: EnqueueAttempt, ID: id})
	}
	b, results, err := c.EnqueueBatch(context.Background(), members, mq.BatchMessage{Queue: done, Message: "completion"})
	if err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	for i, r := range results {
		h.write(Event{Kind: EnqueueAck, ID: members[i].Options.MessageID, Result: answer(r)})
	}
	// The replies dropped from here on: the batch's pipelines of up to
	// 10,000 members, one reply per 100, would rarely get through whole
	// (go-redis sends a pipeline again, whole, a few times at most).
	p.Set(Rule{Action: Drop, Probability: 0.02})
	handled := func() int64 {
		info, err := h.admin.Inspector().Batch(context.Background(), done, b)
		if err != nil {
			return 0
		}
		return info.Finished()
	}
	h.faultsWhile(live, p.Addr, scale(3, 30), scale(1, 5), lock, handled, int64(n))
	p.Set(Rule{})
	h.drainAll(scale(90*time.Second, 300*time.Second), queue, done)
	rep := h.finish(scale(10*time.Second, 60*time.Second))
	info, err := h.admin.Inspector().Batch(context.Background(), done, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("batch: %+v", info)

	evs, err := ReadHistories(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	// The completion's first start must come after every member's
	// first completed handling ended: the member's outcome, recorded
	// after that at the earliest, is what ticks the batch.
	var lastMemberEnd, firstCompletion time.Time
	var notes []string
	ends := map[[2]int64]time.Time{}
	for _, e := range evs {
		if e.Kind == HandleEnd {
			ends[[2]int64{int64(e.PID), e.Handling}] = e.Time
		}
	}
	firstDone := map[string]time.Time{}
	for _, e := range evs {
		if e.Kind != HandleStart {
			continue
		}
		if e.Queue == done {
			if firstCompletion.IsZero() {
				firstCompletion = e.Time
			}
			notes = append(notes, e.Note)
			continue
		}
		end, ok := ends[[2]int64{int64(e.PID), e.Handling}]
		if d, seen := firstDone[e.ID]; ok && (!seen || end.Before(d)) {
			firstDone[e.ID] = end
		}
	}
	for _, d := range firstDone {
		if d.After(lastMemberEnd) {
			lastMemberEnd = d
		}
	}
	want := fmt.Sprintf("succeeded %d dead 0", n)
	expect(t, rep, append(safe(rep),
		check{"completions handled (distinct ids)", int64(rep.Handoffs), 1},
		zero("completion enqueued again", rep.HandoffsReenqueued),
		check{"members counted", info.Finished(), int64(n)},
		check{"members succeeded", info.Succeeded, int64(n)},
	)...)
	if len(notes) == 0 || strings.Count(strings.Join(notes, "|"), want) != len(notes) {
		t.Errorf("completion handlings saw counts %q, want %q", notes, want)
	}
	if !firstCompletion.After(lastMemberEnd) {
		t.Errorf("the completion started at %v, before the last member's handling (%v)", firstCompletion, lastMemberEnd)
	}
}

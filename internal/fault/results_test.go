package fault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// TestScenarioResults: request and reply across processes under faults
// (docs/protocol.md §21). Worker processes give a result with each
// success ("<id>/<pid>/<handling>"); between them and Redis a proxy drops
// 5% of the replies after Redis applied the request, and one worker is
// SIGKILLed and replaced mid-run. This process enqueues each message and
// waits for its result (Client.WaitResult), many at a time. Every message
// gets the result of one of its handlings, each is published once (a
// result written twice would be published twice), the queue keeps one
// result per message, and the checker finds nothing lost.
func TestScenarioResults(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.spec.LockTime, h.spec.RenewLocks, h.spec.Results = 3*time.Second, true, true
	p := h.proxied(20)
	live := []*WorkerProcess{h.startWorker(p.Addr), h.startWorker(p.Addr)}

	// Every notice, counted per id, from a subscription of its own made
	// before anything is enqueued.
	ctx := context.Background()
	sub := h.rdb.Subscribe(ctx, keys.Key(queue, false, keys.Results))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	notices := map[string]int{}
	noticed := make(chan struct{})
	go func() {
		defer close(noticed)
		for m := range sub.Channel() {
			mu.Lock()
			notices[m.Payload]++
			mu.Unlock()
		}
	}()

	p.Set(Rule{Action: Drop, Probability: 0.05, Commands: []string{"evalsha", "eval"}})
	n, askers := scale(400, 4000), 8
	asker := h.producer(redis.Options{Addr: h.redis.Addr})
	t.Cleanup(func() { _ = asker.Close() })
	results := make([]string, n)
	var next, answered atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range askers {
		wg.Add(1)
		h.background(func(ctx context.Context) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				id := fmt.Sprintf("m-%06d", i)
				callCtx, cancel := context.WithTimeout(ctx, time.Minute)
				err := h.enqueue(callCtx, asker, id)
				var r mq.Result
				if err == nil {
					r, err = asker.WaitResult(callCtx, queue, id)
				}
				cancel()
				if err != nil {
					failures.Add(1)
					t.Errorf("%s: %v", id, err)
					continue
				}
				var s string
				if err := r.Decode(&s); err != nil {
					t.Errorf("%s: %v", id, err)
				}
				results[i] = s
				answered.Add(1)
			}
		})
	}
	h.waitFor("half the results", 2*time.Minute, func() bool { return answered.Load() >= int64(n/2) })
	live[0].Kill(t)
	live[0] = h.startWorker(p.Addr)
	wg.Wait()
	p.Set(Rule{})
	rep := h.finish(60 * time.Second)
	t.Logf("proxy: %+v", p.Stats())

	for i, s := range results {
		if id := fmt.Sprintf("m-%06d", i); !strings.HasPrefix(s, id+"/") {
			t.Errorf("%s: result %q", id, s)
		}
	}
	kept, err := h.rdb.HLen(ctx, keys.Key(queue, false, keys.Results)).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The notices of the last outcomes may still be on their way.
	h.waitFor("every notice", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notices) >= n
	})
	mu.Lock()
	twice := 0
	for id, k := range notices {
		if k != 1 {
			twice++
			t.Errorf("%s published %d times", id, k)
		}
	}
	mu.Unlock()
	expect(t, rep, append(safe(rep),
		check{"results kept", kept, int64(n)},
		zero("results published more than once", twice),
		zero("waits failed", failures.Load()),
		check{"process kills", int64(rep.Faults[ProcessKilled]), 1},
	)...)
	_ = sub.Close()
	<-noticed
}

package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"

	"github.com/gocarmine/mq/internal/redistest"
)

// TestHelperFaultWorker is the body of a worker process (see WorkerMain);
// run directly, it skips.
func TestHelperFaultWorker(t *testing.T) {
	if !IsWorkerProcess() {
		t.Skip("run as a worker process by the fault scenarios")
	}
	os.Exit(WorkerMain())
}

// long tells whether MQ_FAULT_LONG asks for the long mode.
func long() bool {
	v, _ := strconv.ParseBool(os.Getenv("MQ_FAULT_LONG"))
	return v
}

// scale picks the short or the long mode's figure.
func scale[T any](short, inLong T) T {
	if long() {
		return inLong
	}
	return short
}

// runDir is where a scenario's histories and worker logs go: a directory
// named after the test under MQ_FAULT_DIR, kept after the test, or else
// the test's own temporary directory.
func runDir(t *testing.T) string {
	root := os.Getenv("MQ_FAULT_DIR")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("histories in %s", dir)
	return dir
}

// queue is the queue every scenario uses, each on its own Redis.
const queue = "fault"

// discardLogger keeps the test process's mq logs out of the way: the
// history is what counts.
var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness is one scenario's run: a redis-server, the test process's own
// history (the producer's and the faults' events), and worker processes
// with theirs, all in one directory.
type harness struct {
	t     *testing.T
	dir   string
	redis *redistest.Server
	hist  *History
	rdb   *redis.Client // straight to Redis
	admin *mq.Client    // on rdb, for queue status

	// spec is the template for worker processes; Redis and History are
	// filled in per process.
	spec WorkerSpec
	// limitKey, when set, names each enqueued message's limit key
	// (EnqueueOptions.LimitKey) from its id.
	limitKey func(id string) string

	mu      sync.Mutex
	workers []*WorkerProcess
}

func newHarness(t *testing.T, redisArgs ...string) *harness {
	t.Helper()
	h := &harness{t: t, dir: runDir(t)}
	h.redis = redistest.Start(t, redisArgs...)
	hist, err := OpenHistory(HistoryPath(h.dir, "test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hist.Close() })
	h.hist = hist
	h.rdb = h.redis.Client(t)
	t.Cleanup(h.logWorkersOnFailure)
	h.admin = h.mqClient(h.rdb)
	h.spec = WorkerSpec{Queue: queue, LockTime: 10 * time.Second, HandlerThreads: 4, HandleFor: 2 * time.Millisecond}
	return h
}

// mqClient returns an mq client on rdb.
func (h *harness) mqClient(rdb redis.UniversalClient) *mq.Client {
	c, err := mq.New(rdb, &mq.Config{Logger: discardLogger})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// producer returns an mq client with a go-redis client of its own.
func (h *harness) producer(opts redis.Options) *mq.Client {
	rdb := redis.NewClient(&opts)
	h.t.Cleanup(func() { _ = rdb.Close() })
	return h.mqClient(rdb)
}

// write appends an event to the test's history.
func (h *harness) write(e Event) {
	if err := h.hist.Write(e); err != nil {
		h.t.Errorf("fault: writing history: %v", err)
	}
}

// startWorker starts a worker process that dials addr.
func (h *harness) startWorker(addr string) *WorkerProcess {
	h.mu.Lock()
	defer h.mu.Unlock()
	spec := h.spec
	spec.Redis = addr
	spec.History = HistoryPath(h.dir, fmt.Sprintf("worker-%02d", len(h.workers)+1))
	p := StartWorker(h.t, h.hist, spec)
	h.workers = append(h.workers, p)
	return p
}

// logWorkersOnFailure logs the end of each worker process's log when the
// test failed.
func (h *harness) logWorkersOnFailure() {
	if !h.t.Failed() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.workers {
		h.t.Logf("worker process %d, end of its log:\n%s", w.PID, tail(w.Log))
	}
}

// stopWorkers stops every worker process still running, gracefully.
func (h *harness) stopWorkers() {
	h.mu.Lock()
	ws := append([]*WorkerProcess(nil), h.workers...)
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		if !w.Exited() {
			wg.Go(func() { w.Stop(h.t, 30*time.Second) })
		}
	}
	wg.Wait()
}

// enqueue enqueues one message whose id and content are id, writing the
// attempt and its answer to the history.
func (h *harness) enqueue(ctx context.Context, c *mq.Client, id string) error {
	h.write(Event{Kind: EnqueueAttempt, ID: id})
	res, err := c.Enqueue(ctx, queue, id, h.options(id))
	if err != nil {
		h.write(Event{Kind: EnqueueFail, ID: id, Err: err.Error()})
		return err
	}
	h.write(Event{Kind: EnqueueAck, ID: id, Result: answer(res)})
	return nil
}

// options are the enqueue options of message id.
func (h *harness) options(id string) *mq.EnqueueOptions {
	o := &mq.EnqueueOptions{MessageID: id}
	if h.limitKey != nil {
		o.LimitKey = h.limitKey(id)
	}
	return o
}

// enqueueMany enqueues ids in one EnqueueMany call, writing each attempt
// and answer; a message without a result failed with the call's error.
func (h *harness) enqueueMany(ctx context.Context, c *mq.Client, ids []string) error {
	reqs := make([]mq.EnqueueRequest, len(ids))
	for i, id := range ids {
		h.write(Event{Kind: EnqueueAttempt, ID: id})
		reqs[i] = mq.EnqueueRequest{Message: id, Options: h.options(id)}
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
	return err
}

// answer names an enqueue's answer as the history records it.
func answer(r mq.EnqueueResult) string {
	switch {
	case r.Refused == nil:
		return string(r.Action)
	case errors.Is(r.Refused, mq.ErrAlreadyQueued):
		return "already-queued"
	case errors.Is(r.Refused, mq.ErrLocked):
		return "locked"
	case errors.Is(r.Refused, mq.ErrBackoff):
		return "backoff"
	}
	return r.Refused.Error()
}

// ids names n messages prefix-000000 on.
func ids(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%06d", prefix, from+i)
	}
	return out
}

// background runs fn in a goroutine until it returns; when the test ends
// first (a failure), fn's context is cancelled and the test waits for it,
// so that nothing writes to the history after the test.
func (h *harness) background(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// production is a running producer.
type production struct {
	wg     sync.WaitGroup
	acked  atomic.Int64
	failed atomic.Int64
}

// wait waits for the producer to finish.
func (p *production) wait() { p.wg.Wait() }

// produce enqueues n messages named prefix-000000 on, from `producers`
// goroutines, each pausing `every` between its calls: pacing, so that the
// run lasts long enough for faults to meet traffic. Each call has a 10 s
// deadline; failures are recorded and not retried.
func (h *harness) produce(c *mq.Client, prefix string, n, producers int, every time.Duration) *production {
	p := &production{}
	var next atomic.Int64
	for range producers {
		p.wg.Add(1)
		h.background(func(ctx context.Context) {
			defer p.wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if h.enqueue(callCtx, c, fmt.Sprintf("%s-%06d", prefix, i)) == nil {
					p.acked.Add(1)
				} else {
					p.failed.Add(1)
				}
				cancel()
				time.Sleep(every)
			}
		})
	}
	return p
}

// drain waits until the queue is empty (nothing waiting, nothing locked),
// as seen straight on Redis, or timeout passes; it logs the latter and
// leaves it to the checker to tell what is missing.
func (h *harness) drain(timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var last mq.QueueCounts
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last, lastErr = h.admin.Inspector().QueueCounts(ctx, queue)
		cancel()
		if lastErr == nil && last.Total == 0 && last.Locked == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Logf("the queue did not drain within %v: %+v (error %v)", timeout, last, lastErr)
}

// waitFor polls cond until it holds, or fails the test after timeout.
func (h *harness) waitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// started tells whether a worker process is up: it wrote its first event.
func started(p *WorkerProcess) bool {
	return countKind(strings.TrimSuffix(p.Log, ".log"), WorkerStart) > 0
}

// countKind counts the events of one kind in a history file, cheaply,
// while it is being written.
func countKind(path string, k Kind) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(`"kind":"`+string(k)+`"`))
}

// finish drains the queue, stops the workers, and returns the checker's
// report on the run, logged.
func (h *harness) finish(drainTimeout time.Duration) Report {
	h.t.Helper()
	h.drain(drainTimeout)
	h.stopWorkers()
	evs, err := ReadHistories(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	rep := Check(evs)
	h.t.Logf("checker's report:\n%s", rep)
	return rep
}

// check is one number a scenario demands.
type check struct {
	name      string
	got, want int64
}

func zero[N int | int64](name string, got N) check { return check{name, int64(got), 0} }

// expect fails the test, printing the report, for each number that is not
// as the scenario demands.
func expect(t *testing.T, rep Report, checks ...check) {
	t.Helper()
	var bad []string
	for _, c := range checks {
		if c.got != c.want {
			bad = append(bad, fmt.Sprintf("%s: got %d, want %d", c.name, c.got, c.want))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s\nreport:\n%s", strings.Join(bad, "\n"), rep)
	}
}

// safe are the checks of the "done" that hold in every scenario:
// no acknowledged message lost, every duplicate explained, no overlap
// while a lock was valid, nothing handled that was never enqueued.
func safe(rep Report) []check {
	return []check{
		zero("lost (acknowledged, never handled)", rep.Lost),
		zero("unexpected (duplicates nothing explains)", rep.Unexpected),
		zero("overlaps (two handlings while a lock was valid)", rep.Overlaps),
		zero("stray (handled, never enqueued)", rep.Stray),
	}
}

// leaseKept are the checks of a scenario whose faults the library must
// absorb without losing a lock: no duplicate but of a handling whose
// outcome was fenced off after its lease had run out (Report.Fenced; a
// machine so busy that the poll's reply and the outcome's call took the
// whole lock time, which the protocol answers by handing the message out
// again) or whose process stalled, every lock the workers count lost told in their histories, and
// none fenced while its lock could still be valid.
func leaseKept(rep Report) []check {
	return []check{
		zero("duplicated (beyond fenced or stalled handlings)", rep.Duplicated-rep.ByCause[CauseFenced]-rep.ByCause[CauseStalled]),
		check{"LockLost (beyond the fences told)", rep.LockLost, int64(rep.Fenced)},
		zero("fenced early (an outcome refused while its lock could be valid)", rep.FencedEarly),
	}
}

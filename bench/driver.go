package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A system is one queue under test, driven by the scenarios below. Each
// system lives in its own file (sys_*.go) and registers an opener in
// systems. The BullMQ driver is the Node program in bullmq/, which speaks
// the same line protocol (see runDriver).
type system interface {
	// enqueueOne enqueues one message, one call, waiting for the answer.
	enqueueOne(ctx context.Context, payload []byte) error
	// enqueueBatch enqueues payloads with the system's best batch API.
	enqueueBatch(ctx context.Context, payloads [][]byte) error
	// enqueueDelayed enqueues payloads, none to be handled before delay
	// has passed, with the system's best batch API for delayed messages.
	// It returns errNotSupported when the system has no delays.
	enqueueDelayed(ctx context.Context, payloads [][]byte, delay time.Duration) error
	// startWorker starts consuming with the given number of concurrent
	// handlers. handle is called once per message, as the handler starts,
	// with the payload as enqueued; the handler then succeeds at once.
	// stop stops consuming and waits for handlers in flight.
	startWorker(ctx context.Context, handlers int, handle func(payload []byte)) (stop func() error, err error)
	// collected reports whether the queue's store holds nothing of handled
	// messages any more: only the waiting (delayed) ones are left. calls is
	// the number of Redis commands the check itself ran, which the
	// orchestrator takes off the measured phase's count. What "collected"
	// means differs by system; each file says what it checks.
	collected(ctx context.Context, waiting int) (ok bool, calls int, err error)
	close() error
}

// manyQueues is a system that can run one idle worker on each of many
// queues in one process, all on one shared Redis client with the client
// library's default options (the queues scenario).
type manyQueues interface {
	// startQueues starts a worker of one handler on every queue; handle
	// is called as a handler starts, with the payload as enqueued.
	startQueues(ctx context.Context, queues []string, handle func(payload []byte)) (stop func() error, err error)
	// enqueueTo enqueues one message to one of the queues, on the shared
	// client.
	enqueueTo(ctx context.Context, queue string, payload []byte) error
}

// errNotSupported is a system's answer for a feature it does not have; the
// driver then reports the scenario as skipped.
var errNotSupported = errors.New("not supported by this system")

type opener func(ctx context.Context, addr, queue string) (system, error)

// systems maps a system's name to its opener; sys_*.go files add to it in
// init functions.
var systems = map[string]opener{}

// delayedBy is how far in the future the delayed messages of a scenario are
// due: far beyond any measurement, so that they only wait.
const delayedBy = time.Hour

// driverArgs are one driver run's parameters; the Node driver takes the
// same flags.
type driverArgs struct {
	system   string
	scenario string
	addr     string
	queue    string
	n        int
	handlers int
	size     int
	rate     int
	duration time.Duration
	batch    int
	// delayed messages (due in delayedBy) are enqueued before the scenario
	// starts, and wait throughout.
	delayed int
	// settle is how long a started worker runs before the measured phase,
	// so that it has gone idle (or, with messages delayed, settled into
	// whatever it does with them).
	settle time.Duration
	// queues and probes are the queues scenario's: how many queues (one
	// worker each) and how many probe messages, one every probeEvery.
	queues     int
	probes     int
	probeEvery time.Duration
	// collectTimeout bounds the wait for handled messages to be collected.
	collectTimeout time.Duration
	// cpuProfile, when not empty, is the file a CPU profile of the
	// measured phase (from GO to the end) is written to: where a
	// system's client spends its CPU, run by hand with -driver.
	cpuProfile string
}

// mark is what a driver reports at a measurement point. The orchestrator
// reads Redis INFO when it sees the line, so the Redis figures of a mark are
// the deltas since GO.
type mark struct {
	N           int              `json:"n"`
	Seconds     float64          `json:"seconds"`
	ClientCPUus float64          `json:"client_cpu_us"`
	Latency     map[string]int64 `json:"lat_us,omitempty"`
	HeapBytes   map[string]int64 `json:"heap_bytes,omitempty"`
	Counts      map[string]int64 `json:"counts,omitempty"`
	// OwnCalls are Redis commands the driver ran to observe the system
	// (collection checks), not part of the system's own work.
	OwnCalls int64 `json:"own_calls,omitempty"`
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

// payload returns a message of size bytes whose first 8 hold the time it
// was made, for latency.
func payload(size int) []byte {
	p := make([]byte, max(size, 16))
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	return p
}

// payloads returns n messages made by payload.
func payloads(n, size int) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = payload(size)
	}
	return msgs
}

func sentAt(p []byte) time.Time {
	if len(p) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p)))
}

// runDriver runs one scenario of one system and speaks the line protocol on
// stdout/stdin:
//
//	driver: READY                  (set-up done: queue cleared, pre-filled...)
//	orch:   GO
//	driver: MARK <name> <json>     (one or more; the orchestrator samples Redis)
//	driver: END
//
// A driver that cannot run the scenario (a feature the system lacks) prints
// "SKIP <reason>" then END, before READY.
func runDriver(ctx context.Context, a driverArgs) error {
	open, ok := systems[a.system]
	if !ok {
		return fmt.Errorf("unknown system %q", a.system)
	}
	sys, err := open(ctx, a.addr, a.queue)
	if err != nil {
		return err
	}
	defer sys.close()

	in := bufio.NewScanner(os.Stdin)
	stopProfile := func() error { return nil }
	defer func() {
		if err := stopProfile(); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
		}
	}()
	ready := func() error {
		fmt.Println("READY")
		if !in.Scan() || in.Text() != "GO" {
			return fmt.Errorf("expected GO from the orchestrator")
		}
		if a.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(a.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stopProfile = func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}
		return nil
	}
	report := func(name string, m mark) {
		b, _ := json.Marshal(m)
		fmt.Printf("MARK %s %s\n", name, b)
	}
	err = scenario(ctx, sys, a, ready, report)
	if errors.Is(err, errNotSupported) {
		fmt.Printf("SKIP %v\n", err)
		err = nil
	}
	if err != nil {
		return err
	}
	fmt.Println("END")
	return nil
}

// scenario runs a's scenario on sys; ready hands over to the orchestrator
// (READY, then wait for GO) and report prints a mark.
func scenario(ctx context.Context, sys system, a driverArgs, ready func() error, report func(string, mark)) error {
	if err := prefillDelayed(ctx, sys, a); err != nil {
		return err
	}
	switch a.scenario {
	case "enqueue-one":
		// An idle worker of a.handlers handlers on a queue of its own
		// beside the one enqueued to: what a service that both enqueues
		// and works pays, without handling the enqueued messages.
		stop, err := besideWorker(ctx, a)
		if err != nil {
			return err
		}
		msgs := payloads(a.n, a.size)
		time.Sleep(a.settle)
		if err := ready(); err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuMicros()
		for _, p := range msgs {
			if err := sys.enqueueOne(ctx, p); err != nil {
				return err
			}
		}
		report("done", mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		return stop()

	case "producer":
		return producer(ctx, sys, a, ready, report)

	case "enqueue-batch":
		msgs := payloads(a.n, a.size)
		if err := ready(); err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuMicros()
		for i := 0; i < len(msgs); i += a.batch {
			if err := sys.enqueueBatch(ctx, msgs[i:min(len(msgs), i+a.batch)]); err != nil {
				return err
			}
		}
		report("done", mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		return nil

	case "e2e":
		if err := prefill(ctx, sys, a); err != nil {
			return err
		}
		if err := ready(); err != nil {
			return err
		}
		var handled atomic.Int64
		all := make(chan struct{})
		t0, c0 := time.Now(), cpuMicros()
		stop, err := sys.startWorker(ctx, a.handlers, func([]byte) {
			if handled.Add(1) == int64(a.n) {
				close(all)
			}
		})
		if err != nil {
			return err
		}
		<-all
		report("handled", mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		if err := waitCollected(ctx, sys, a, "clean", t0, c0, report); err != nil {
			return err
		}
		return stop()

	case "latency":
		n := int(a.duration.Seconds() * float64(a.rate))
		var mu sync.Mutex
		lat := make([]int64, 0, n)
		all := make(chan struct{})
		stop, err := sys.startWorker(ctx, a.handlers, func(p []byte) {
			d := time.Since(sentAt(p)).Microseconds()
			mu.Lock()
			lat = append(lat, d)
			if len(lat) == n {
				close(all)
			}
			mu.Unlock()
		})
		if err != nil {
			return err
		}
		time.Sleep(a.settle) // let the worker go idle
		if err := ready(); err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuMicros()
		tick := time.NewTicker(time.Second / time.Duration(a.rate))
		for range n {
			<-tick.C
			if err := sys.enqueueOne(ctx, payload(a.size)); err != nil {
				return err
			}
		}
		tick.Stop()
		<-all
		mu.Lock()
		slices.Sort(lat)
		m := mark{N: n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0,
			Latency: map[string]int64{"p50": pct(lat, 0.50), "p99": pct(lat, 0.99), "max": lat[len(lat)-1]}}
		mu.Unlock()
		report("done", m)
		return stop()

	case "idle":
		stop, err := sys.startWorker(ctx, a.handlers, func([]byte) {})
		if err != nil {
			return err
		}
		time.Sleep(a.settle) // past the first, short end-of-queue sleeps
		if err := ready(); err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuMicros()
		time.Sleep(a.duration)
		report("done", mark{Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		return stop()

	case "redis-mem":
		return redisMem(ctx, sys, a, ready, report)

	case "queues":
		mq, ok := sys.(manyQueues)
		if !ok {
			return fmt.Errorf("many queues on one client: %w", errNotSupported)
		}
		return queuesProbe(ctx, mq, a, ready, report)

	case "memory":
		if err := ready(); err != nil {
			return err
		}
		m, err := memory(ctx, sys, a)
		if err != nil {
			return err
		}
		report("done", m)
		return nil
	}
	return fmt.Errorf("unknown scenario %q", a.scenario)
}

// producer runs a.handlers goroutines that each enqueue their share of
// a.n messages of a.size bytes, one call at a time, each waiting for its
// answer, with no worker running: what request handlers of a service pay.
// It reports the calls' latency (p50, p99, max) beside the usual figures.
func producer(ctx context.Context, sys system, a driverArgs, ready func() error, report func(string, mark)) error {
	g := max(1, a.handlers)
	lat := make([][]int64, g)
	for i := range lat {
		lat[i] = make([]int64, 0, a.n/g+1)
	}
	if err := ready(); err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	t0, c0 := time.Now(), cpuMicros()
	for i := range g {
		wg.Go(func() {
			for k := i; k < a.n; k += g {
				p := payload(a.size)
				start := time.Now()
				err := sys.enqueueOne(ctx, p)
				lat[i] = append(lat[i], time.Since(start).Microseconds())
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	secs, cpu := time.Since(t0).Seconds(), cpuMicros()-c0
	if firstErr != nil {
		return firstErr
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	report("done", mark{N: a.n, Seconds: secs, ClientCPUus: cpu,
		Latency: map[string]int64{"p50": pct(all, 0.50), "p99": pct(all, 0.99), "max": all[len(all)-1]}})
	return nil
}

// besideWorker starts an idle worker of a.handlers handlers on a queue of
// its own (a.queue + "-beside"), on a system opened for it.
func besideWorker(ctx context.Context, a driverArgs) (stop func() error, err error) {
	other, err := systems[a.system](ctx, a.addr, a.queue+"-beside")
	if err != nil {
		return nil, err
	}
	stopW, err := other.startWorker(ctx, a.handlers, func([]byte) {})
	if err != nil {
		other.close()
		return nil, err
	}
	return func() error { return errors.Join(stopW(), other.close()) }, nil
}

// waitCollected waits until sys has collected every handled message (only
// a.delayed are left), checking every 2 ms, and reports mark name then, with
// times and CPU since t0 and c0. A system that has not collected them
// within a.collectTimeout gets no mark, and a note on stderr.
func waitCollected(ctx context.Context, sys system, a driverArgs, name string, t0 time.Time, c0 float64, report func(string, mark)) error {
	var own int64
	deadline := time.Now().Add(a.collectTimeout)
	for {
		ok, calls, err := sys.collected(ctx, a.delayed)
		if err != nil {
			return err
		}
		own += int64(calls)
		if ok {
			report(name, mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0, OwnCalls: own})
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%s: handled messages not collected within %v\n", a.system, a.collectTimeout)
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// redisMem runs a.n messages of a.size bytes through a worker of
// a.handlers handlers: the worker starts and settles before GO (the
// orchestrator reads Redis's memory then, with nothing enqueued), then the
// messages are enqueued in batches while it works; marks "handled" once
// all were handled and "clean" once collected.
func redisMem(ctx context.Context, sys system, a driverArgs, ready func() error, report func(string, mark)) error {
	var handled atomic.Int64
	all := make(chan struct{})
	stop, err := sys.startWorker(ctx, a.handlers, func([]byte) {
		if handled.Add(1) == int64(a.n) {
			close(all)
		}
	})
	if err != nil {
		return err
	}
	time.Sleep(a.settle)
	if err := ready(); err != nil {
		return err
	}
	t0, c0 := time.Now(), cpuMicros()
	if err := prefill(ctx, sys, a); err != nil {
		return err
	}
	<-all
	report("handled", mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
	if err := waitCollected(ctx, sys, a, "clean", t0, c0, report); err != nil {
		return err
	}
	return stop()
}

// queuesProbe starts a.queues queues with one idle worker each on one
// shared client, lets them settle, then sends a.probes probe messages one
// every a.probeEvery, each to another queue, each from its own goroutine
// (so that a slow enqueue does not delay the next probe). It reports the
// enqueue call's latency, the enqueue-to-handler latency, and how many
// probes were not handled within 10 ms and within 5 s of their enqueue.
func queuesProbe(ctx context.Context, sys manyQueues, a driverArgs, ready func() error, report func(string, mark)) error {
	const late, lost = 10 * time.Millisecond, 5 * time.Second
	queues := make([]string, a.queues)
	for i := range queues {
		queues[i] = fmt.Sprintf("%s-%03d", a.queue, i)
	}
	var mu sync.Mutex
	handledAt := make(map[uint64]time.Duration) // probe -> enqueue to handler
	stop, err := sys.startQueues(ctx, queues, func(p []byte) {
		d := time.Since(sentAt(p))
		mu.Lock()
		handledAt[binary.BigEndian.Uint64(p[8:])] = d
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	time.Sleep(a.settle)
	if err := ready(); err != nil {
		return err
	}
	t0, c0 := time.Now(), cpuMicros()
	enq := make([]int64, a.probes)
	var errs atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(a.probeEvery)
	for i := range a.probes {
		if i > 0 {
			<-tick.C
		}
		p := payload(a.size)
		binary.BigEndian.PutUint64(p[8:], uint64(i))
		q := queues[(i*37)%len(queues)] // spread over the queues
		wg.Go(func() {
			start := time.Now()
			err := sys.enqueueTo(ctx, q, p)
			enq[i] = time.Since(start).Microseconds()
			if err != nil {
				errs.Add(1)
				fmt.Fprintf(os.Stderr, "%s: probe enqueue: %v\n", a.system, err)
			}
		})
	}
	tick.Stop()
	last := time.Now()
	wg.Wait()
	// Wait until every probe was handled, or the last one's 5 s are up.
	for time.Since(last) < lost {
		mu.Lock()
		n := len(handledAt)
		mu.Unlock()
		if n == a.probes {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	var hl []int64
	var nLate, nLost int64
	for i := range a.probes {
		d, ok := handledAt[uint64(i)]
		if !ok || d > lost {
			nLost++
		}
		if !ok || d > late {
			nLate++
		}
		if ok {
			hl = append(hl, d.Microseconds())
		}
	}
	mu.Unlock()
	slices.Sort(enq)
	slices.Sort(hl)
	lat := map[string]int64{"enq_p50": pct(enq, 0.5), "enq_p99": pct(enq, 0.99), "enq_max": enq[len(enq)-1]}
	if len(hl) > 0 {
		lat["p50"], lat["p99"], lat["max"] = pct(hl, 0.5), pct(hl, 0.99), hl[len(hl)-1]
	}
	report("done", mark{N: a.probes, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0, Latency: lat,
		Counts: map[string]int64{"late": nLate, "lost": nLost, "errors": errs.Load()}})
	return stop()
}

// memory runs a.n messages through a worker with a.handlers handlers,
// keeping about 20,000 waiting, and reports the heap in use after a GC at
// 100,000 messages handled and at the end.
func memory(ctx context.Context, sys system, a driverArgs) (mark, error) {
	const backlog, first = 20_000, 100_000
	var handled atomic.Int64
	at100k, all := make(chan struct{}), make(chan struct{})
	t0, c0 := time.Now(), cpuMicros()
	stop, err := sys.startWorker(ctx, a.handlers, func([]byte) {
		switch handled.Add(1) {
		case first:
			close(at100k)
		case int64(a.n):
			close(all)
		}
	})
	if err != nil {
		return mark{}, err
	}
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse)
	}
	m := mark{N: a.n, HeapBytes: map[string]int64{}}
	for sent := 0; sent < a.n; {
		if sent-int(handled.Load()) > backlog {
			time.Sleep(time.Millisecond)
			continue
		}
		msgs := make([][]byte, min(a.batch, a.n-sent))
		for j := range msgs {
			msgs[j] = payload(a.size)
		}
		if err := sys.enqueueBatch(ctx, msgs); err != nil {
			return mark{}, err
		}
		sent += len(msgs)
		select {
		case <-at100k:
			if _, ok := m.HeapBytes["at_100k"]; !ok {
				m.HeapBytes["at_100k"] = heap()
			}
		default:
		}
	}
	if _, ok := m.HeapBytes["at_100k"]; !ok && a.n >= first {
		<-at100k
		m.HeapBytes["at_100k"] = heap()
	}
	<-all
	m.HeapBytes["at_end"] = heap()
	m.Seconds, m.ClientCPUus = time.Since(t0).Seconds(), cpuMicros()-c0
	return m, stop()
}

// prefill enqueues a.n messages of a.size bytes, a.batch per call.
func prefill(ctx context.Context, sys system, a driverArgs) error {
	for i := 0; i < a.n; i += a.batch {
		if err := sys.enqueueBatch(ctx, payloads(min(a.batch, a.n-i), a.size)); err != nil {
			return err
		}
	}
	return nil
}

// prefillDelayed enqueues a.delayed messages of a.size bytes due in
// delayedBy, a.batch per call.
func prefillDelayed(ctx context.Context, sys system, a driverArgs) error {
	for i := 0; i < a.delayed; i += a.batch {
		if err := sys.enqueueDelayed(ctx, payloads(min(a.batch, a.delayed-i), a.size), delayedBy); err != nil {
			return fmt.Errorf("delayed messages: %w", err)
		}
	}
	return nil
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
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
	// startWorker starts consuming with the given number of concurrent
	// handlers. handle is called once per message, as the handler starts,
	// with the payload as enqueued; the handler then succeeds at once.
	// stop stops consuming and waits for handlers in flight.
	startWorker(ctx context.Context, handlers int, handle func(payload []byte)) (stop func() error, err error)
	// clean reports whether the queue's store holds nothing of handled
	// messages any more (for systems that collect them after handling).
	clean(ctx context.Context) (bool, error)
	close() error
}

type opener func(ctx context.Context, addr, queue string) (system, error)

// systems maps a system's name to its opener; sys_*.go files add to it in
// init functions.
var systems = map[string]opener{}

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
	p := make([]byte, max(size, 8))
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
	ready := func() error {
		fmt.Println("READY")
		if !in.Scan() || in.Text() != "GO" {
			return fmt.Errorf("expected GO from the orchestrator")
		}
		return nil
	}
	report := func(name string, m mark) {
		b, _ := json.Marshal(m)
		fmt.Printf("MARK %s %s\n", name, b)
	}

	switch a.scenario {
	case "enqueue-one":
		msgs := payloads(a.n, a.size)
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
		for {
			ok, err := sys.clean(ctx)
			if err != nil {
				return err
			}
			if ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		report("clean", mark{N: a.n, Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		if err := stop(); err != nil {
			return err
		}

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
		time.Sleep(time.Second) // let the worker go idle
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
		if err := stop(); err != nil {
			return err
		}

	case "idle":
		stop, err := sys.startWorker(ctx, a.handlers, func([]byte) {})
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second) // past the first, short end-of-queue sleeps
		if err := ready(); err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuMicros()
		time.Sleep(a.duration)
		report("done", mark{Seconds: time.Since(t0).Seconds(), ClientCPUus: cpuMicros() - c0})
		if err := stop(); err != nil {
			return err
		}

	case "memory":
		if err := ready(); err != nil {
			return err
		}
		m, err := memory(ctx, sys, a)
		if err != nil {
			return err
		}
		report("done", m)

	default:
		return fmt.Errorf("unknown scenario %q", a.scenario)
	}
	fmt.Println("END")
	return nil
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

func prefill(ctx context.Context, sys system, a driverArgs) error {
	for i := 0; i < a.n; i += a.batch {
		if err := sys.enqueueBatch(ctx, payloads(min(a.batch, a.n-i), a.size)); err != nil {
			return err
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

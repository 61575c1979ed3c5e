// Command bench runs the side-by-side benchmark of this library against
// asynq, BullMQ and a driver that speaks the Carmine protocol the way
// Carmine's own worker does. See README.md in this folder, or run
// ./run.sh, which builds everything and runs this.
//
// The orchestrator starts one dedicated redis-server (persistence off) on a
// free loopback port and runs every (scenario, system) pair as a child
// process, alternating systems run by run. A child connects, sets up,
// prints READY and waits for GO; the orchestrator then reads Redis's INFO
// before and at every MARK the child prints, so that Redis commands and
// Redis CPU are counted for the measured phase only.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// fullScenarios and quickScenarios are the scenarios of a full run and of
// a quick one (-quick). A name is scenario[-H][+D]: H handlers (or queues,
// for queues), D messages delayed by an hour waiting (10k, 1M...).
const (
	fullScenarios = "enqueue-one,producer-1,producer-8,producer-64,enqueue-batch,e2e-1,e2e-8,e2e-8+100k,latency-1," +
		"light,light+10k,light+100k,idle,idle+10k,idle+100k,idle+1M,redis-mem,queues-100"
	quickScenarios = "enqueue-one,producer-1,producer-8,producer-64,enqueue-batch,e2e-1,e2e-8,e2e-8+10k,latency-1," +
		"light,light+10k,idle,idle+10k,redis-mem,queues-100"
)

func main() {
	var (
		d         driverArgs
		o         orchestrator
		driver    = flag.Bool("driver", false, "run as a driver (internal)")
		quick     = flag.Bool("quick", false, "every scenario at small sizes, once (under 2 minutes); flags given explicitly still apply")
		runs      = flag.Int("runs", 3, "runs of every scenario and system")
		sysList   = flag.String("systems", "mq,asynq,bullmq", "systems to compare (also: carmine)")
		scenarios = flag.String("scenarios", fullScenarios, "scenarios to run: name[-H][+D], see README.md")
		memory    = flag.Int("memory", 1_000_000, "messages for the mq worker heap run (0: skip it)")
		serverBin = flag.String("redis-server", "redis-server", "redis-server binary")
		out       = flag.String("out", "", "also write the Markdown report to this file")
	)
	flag.StringVar(&o.baseline, "baseline", "", "a bench binary built from another commit of mq: its mq runs as the system mq-base")
	flag.StringVar(&o.bullmqDir, "bullmq", "bullmq", "folder of the BullMQ driver")
	flag.DurationVar(&o.idleFor, "idle", 10*time.Second, "idle: measurement window")
	flag.DurationVar(&o.lightFor, "light", 10*time.Second, "light: how long to send 200 messages a second")
	flag.IntVar(&o.bigRuns, "big-runs", 1, "runs of the scenarios with 500,000 or more delayed messages (their set-up is long)")
	flag.IntVar(&o.memN, "mem-n", 10_000, "redis-mem: messages handled")
	flag.IntVar(&o.memSize, "mem-size", 10<<10, "redis-mem: message size in bytes")
	flag.StringVar(&d.system, "system", "", "driver: system")
	flag.StringVar(&d.scenario, "scenario", "", "driver: scenario")
	flag.StringVar(&d.addr, "addr", "", "driver: Redis address")
	flag.StringVar(&d.queue, "queue", "bench", "queue name")
	flag.IntVar(&d.n, "n", 50_000, "messages per run (e2e: ready messages; enqueue-one: a fifth)")
	flag.IntVar(&d.handlers, "handlers", 1, "driver: concurrent handlers")
	flag.IntVar(&d.size, "size", 100, "message size in bytes")
	flag.IntVar(&d.rate, "rate", 200, "latency and light: messages a second")
	flag.DurationVar(&d.duration, "duration", 5*time.Second, "latency: how long to send; driver: idle time")
	flag.IntVar(&d.batch, "batch", 1000, "messages per batch call")
	flag.IntVar(&d.delayed, "delayed", 0, "driver: messages delayed by an hour, enqueued first")
	flag.DurationVar(&d.settle, "settle", 3*time.Second, "how long a worker runs before the measured phase")
	flag.IntVar(&d.queues, "queues", 100, "driver: queues of the queues scenario")
	flag.IntVar(&d.probes, "probes", 20, "queues: probe messages")
	flag.DurationVar(&d.probeEvery, "probe-every", 250*time.Millisecond, "queues: time between probes")
	flag.StringVar(&d.cpuProfile, "cpuprofile", "", "driver: write a CPU profile of the measured phase to this file")
	flag.DurationVar(&d.collectTimeout, "collect-timeout", 2*time.Minute, "longest wait for handled messages to be collected")
	flag.Parse()
	log.SetFlags(0)

	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{
			"runs": "1", "scenarios": quickScenarios, "memory": "0", "n": "5000",
			"idle": "2s", "light": "2s", "duration": "2s", "settle": "1s",
			"mem-n": "2000", "probe-every": "50ms", "collect-timeout": "20s",
		} {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if *driver {
		if err := runDriver(ctx, d); err != nil {
			log.Fatalf("driver %s/%s: %v", d.system, d.scenario, err)
		}
		return
	}

	srv, err := startRedis(ctx, *serverBin)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.stop()

	o.srv, o.base, o.quick = srv, d, *quick
	o.results = map[string]map[string][]measure{}
	systemNames := strings.Split(*sysList, ",")
	for _, s := range systemNames {
		if s == baseSystem && o.baseline == "" {
			log.Fatalf("system %s needs -baseline", baseSystem)
		}
		if s != "bullmq" && s != baseSystem {
			if _, ok := systems[s]; !ok {
				log.Fatalf("unknown system %q", s)
			}
		}
	}
	var cases []caseSpec
	for _, name := range strings.Split(*scenarios, ",") {
		c, err := parseCase(name)
		if err != nil {
			log.Fatal(err)
		}
		cases = append(cases, c)
	}
	started := time.Now()
	for run := 0; run < *runs; run++ {
		for ci, c := range cases {
			if c.delayed >= bigDelayed && run >= o.bigRuns {
				continue
			}
			// Alternate: each run and scenario starts with another system.
			k := run + ci
			for i := range systemNames {
				s := systemNames[(i+k)%len(systemNames)]
				log.Printf("run %d/%d %-13s %-8s (%s)", run+1, *runs, c.name, s, time.Since(started).Round(time.Second))
				if err := o.measure(ctx, run, s, c); err != nil {
					log.Fatalf("%s %s: %v", s, c.name, err)
				}
			}
		}
	}
	var mem *memResult
	if *memory > 0 && contains(systemNames, "mq") {
		log.Printf("memory run: %d messages through mq", *memory)
		mem, err = o.memory(ctx, *memory)
		if err != nil {
			log.Fatalf("memory run: %v", err)
		}
	}
	report := o.report(systemNames, cases, *runs, mem, time.Since(started))
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// bigDelayed is the number of delayed messages from which a scenario runs
// only -big-runs times.
const bigDelayed = 500_000

// caseSpec is one scenario of the command line, parsed.
type caseSpec struct {
	name     string // as given, the key of its results
	scenario string // the orchestrator's scenario (light, idle, e2e...)
	n        int    // handlers (e2e, latency) or queues (queues); 0 if not given
	delayed  int
}

// parseCase parses name[-N][+D]: D is a count with an optional k or M
// suffix.
func parseCase(c string) (caseSpec, error) {
	spec := caseSpec{name: c, scenario: c}
	if base, d, ok := strings.Cut(c, "+"); ok {
		mult := 1
		switch {
		case strings.HasSuffix(d, "k"):
			mult, d = 1000, strings.TrimSuffix(d, "k")
		case strings.HasSuffix(d, "M"):
			mult, d = 1_000_000, strings.TrimSuffix(d, "M")
		}
		v, err := strconv.Atoi(d)
		if err != nil || v < 0 {
			return spec, fmt.Errorf("scenario %q: bad delayed count", c)
		}
		spec.scenario, spec.delayed = base, v*mult
	}
	if i := strings.LastIndex(spec.scenario, "-"); i > 0 {
		if v, err := strconv.Atoi(spec.scenario[i+1:]); err == nil && v > 0 {
			spec.scenario, spec.n = spec.scenario[:i], v
		}
	}
	switch spec.scenario {
	case "e2e", "latency", "queues", "producer":
		if spec.n == 0 {
			return spec, fmt.Errorf("scenario %q: say how many, as in %s-8", c, spec.scenario)
		}
	case "enqueue-one", "enqueue-batch", "light", "idle", "redis-mem":
		if spec.n != 0 {
			return spec, fmt.Errorf("scenario %q takes no count", c)
		}
	default:
		return spec, fmt.Errorf("unknown scenario %q", c)
	}
	if spec.delayed > 0 && spec.scenario != "e2e" && spec.scenario != "light" && spec.scenario != "idle" {
		return spec, fmt.Errorf("scenario %q: only e2e, light and idle take delayed messages", c)
	}
	return spec, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// redisServer is the dedicated server of one benchmark.
type redisServer struct {
	addr string
	cmd  *exec.Cmd
	rdb  *redis.Client
	dir  string
}

func startRedis(ctx context.Context, bin string) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "mq-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &redisServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, dir: dir}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.addr})
	deadline := time.Now().Add(10 * time.Second)
	for s.rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

func (s *redisServer) stop() {
	s.rdb.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

// redisSample is what INFO tells of the server at one moment.
type redisSample struct {
	calls  int64   // commands run, scripts' own calls included, INFO excluded
	cpuSec float64 // used_cpu_sys + used_cpu_user
	memory int64   // used_memory
}

func (s *redisServer) sample(ctx context.Context) (redisSample, error) {
	info, err := s.rdb.Info(ctx, "cpu", "commandstats", "memory").Result()
	if err != nil {
		return redisSample{}, err
	}
	var r redisSample
	for _, line := range strings.Split(info, "\r\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			var f float64
			fmt.Sscan(val, &f)
			r.cpuSec += f
		case name == "used_memory":
			fmt.Sscan(val, &r.memory)
		case strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info":
			// calls=N,usec=...
			if c, ok := strings.CutPrefix(val, "calls="); ok {
				c, _, _ = strings.Cut(c, ",")
				var n int64
				fmt.Sscan(c, &n)
				r.calls += n
			}
		}
	}
	return r, nil
}

// measure is one mark of one run: the driver's figures, Redis's deltas
// since GO (the driver's own observing commands taken off), and Redis's
// memory at GO and at the mark.
type measure struct {
	mark
	run              int
	calls            int64
	cpuSec           float64
	memGO, memAtMark int64
}

// baseSystem is the system name of -baseline's mq.
const baseSystem = "mq-base"

type orchestrator struct {
	baseline  string // -baseline: a bench binary of another commit of mq
	srv       *redisServer
	base      driverArgs
	bullmqDir string
	quick     bool
	idleFor   time.Duration // idle window
	lightFor  time.Duration // light: sending time
	bigRuns   int
	memN      int // redis-mem: messages
	memSize   int // redis-mem: their size
	// results[case/mark][system] holds one measure per run.
	results map[string]map[string][]measure
}

// driverCommand returns the child process that runs scenario a.
func (o *orchestrator) driverCommand(a driverArgs) (*exec.Cmd, error) {
	args := []string{
		"-system", a.system, "-scenario", a.scenario, "-addr", a.addr, "-queue", a.queue,
		"-n", fmt.Sprint(a.n), "-handlers", fmt.Sprint(a.handlers), "-size", fmt.Sprint(a.size),
		"-rate", fmt.Sprint(a.rate), "-duration", a.duration.String(), "-batch", fmt.Sprint(a.batch),
		"-delayed", fmt.Sprint(a.delayed), "-settle", a.settle.String(),
		"-queues", fmt.Sprint(a.queues), "-probes", fmt.Sprint(a.probes),
		"-probe-every", a.probeEvery.String(), "-collect-timeout", a.collectTimeout.String(),
	}
	if a.system == "bullmq" {
		return exec.Command("node", append([]string{filepath.Join(o.bullmqDir, "driver.mjs")}, args...)...), nil
	}
	if a.system == baseSystem {
		// The baseline binary's own mq driver: the same scenario code,
		// another commit of the library.
		args[1] = "mq"
		return exec.Command(o.baseline, append([]string{"-driver"}, args...)...), nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(self, append([]string{"-driver"}, args...)...), nil
}

// driverArgs maps scenario c to the driver's scenario and parameters.
func (o *orchestrator) driverArgs(s string, c caseSpec) driverArgs {
	a := o.base
	a.system, a.addr = s, o.srv.addr
	a.scenario, a.handlers, a.delayed = c.scenario, 8, c.delayed
	switch c.scenario {
	case "enqueue-one":
		// One call at a time is slow for some systems: a fifth of the
		// messages is plenty to measure it. 8 handlers idle beside.
		a.n = max(1000, a.n/5)
	case "e2e", "latency", "producer":
		a.handlers = c.n
	case "light":
		a.scenario, a.duration = "latency", o.lightFor
	case "idle":
		a.duration = o.idleFor
	case "redis-mem":
		a.n, a.size = o.memN, o.memSize
	case "queues":
		a.queues = c.n
	}
	return a
}

// measure runs scenario c of system s once, as run number run.
func (o *orchestrator) measure(ctx context.Context, run int, s string, c caseSpec) error {
	a := o.driverArgs(s, c)
	if err := o.srv.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	marks, err := o.run(ctx, a)
	if err != nil {
		return err
	}
	for name, m := range marks {
		m.run = run
		key := c.name + "/" + name
		if o.results[key] == nil {
			o.results[key] = map[string][]measure{}
		}
		o.results[key][s] = append(o.results[key][s], m)
	}
	return nil
}

// run starts the driver for a, drives the protocol, and returns its marks.
func (o *orchestrator) run(ctx context.Context, a driverArgs) (map[string]measure, error) {
	cmd, err := o.driverCommand(a)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()

	marks := map[string]measure{}
	var start redisSample
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "READY":
			if start, err = o.srv.sample(ctx); err != nil {
				return nil, err
			}
			if _, err := io.WriteString(stdin, "GO\n"); err != nil {
				return nil, err
			}
		case strings.HasPrefix(line, "MARK "):
			now, err := o.srv.sample(ctx)
			if err != nil {
				return nil, err
			}
			name, js, _ := strings.Cut(strings.TrimPrefix(line, "MARK "), " ")
			m := measure{calls: now.calls - start.calls, cpuSec: now.cpuSec - start.cpuSec,
				memGO: start.memory, memAtMark: now.memory}
			if err := jsonUnmarshal(js, &m.mark); err != nil {
				return nil, fmt.Errorf("bad mark %q: %w", line, err)
			}
			m.calls -= m.OwnCalls
			marks[name] = m
		case strings.HasPrefix(line, "SKIP "):
			log.Printf("%s skips %s: %s", a.system, a.scenario, strings.TrimPrefix(line, "SKIP "))
		case line == "END":
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				return nil, err
			}
			return marks, nil
		default:
			fmt.Fprintf(os.Stderr, "%s: %s\n", a.system, line)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("driver exited: %w", err)
	}
	return nil, fmt.Errorf("driver ended without END")
}

// memResult is the mq worker's heap at two points of one long run.
type memResult struct {
	at100k, atEnd int64
	n             int
}

func (o *orchestrator) memory(ctx context.Context, n int) (*memResult, error) {
	if err := o.srv.rdb.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}
	a := o.base
	a.system, a.scenario, a.addr, a.n, a.handlers = "mq", "memory", o.srv.addr, n, 8
	marks, err := o.run(ctx, a)
	if err != nil {
		return nil, err
	}
	m := marks["done"]
	return &memResult{at100k: m.HeapBytes["at_100k"], atEnd: m.HeapBytes["at_end"], n: n}, nil
}

var bgCtx = context.Background()

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
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	var (
		d         driverArgs
		driver    = flag.Bool("driver", false, "run as a driver (internal)")
		runs      = flag.Int("runs", 3, "runs of every scenario and system")
		sysList   = flag.String("systems", "mq,asynq,bullmq,carmine", "systems to compare")
		scenarios = flag.String("scenarios", "enqueue-one,enqueue-batch,e2e-1,e2e-8,latency-1,latency-8,idle", "scenarios to run")
		memory    = flag.Int("memory", 1_000_000, "messages for the mq memory run (0: skip it)")
		bullmqDir = flag.String("bullmq", "bullmq", "folder of the BullMQ driver")
		serverBin = flag.String("redis-server", "redis-server", "redis-server binary")
		out       = flag.String("out", "", "also write the Markdown report to this file")
		idleFor   = flag.Duration("idle", 10*time.Second, "idle measurement time")
	)
	flag.StringVar(&d.system, "system", "", "driver: system")
	flag.StringVar(&d.scenario, "scenario", "", "driver: scenario")
	flag.StringVar(&d.addr, "addr", "", "driver: Redis address")
	flag.StringVar(&d.queue, "queue", "bench", "queue name")
	flag.IntVar(&d.n, "n", 50_000, "messages per run")
	flag.IntVar(&d.handlers, "handlers", 1, "driver: concurrent handlers")
	flag.IntVar(&d.size, "size", 100, "message size in bytes")
	flag.IntVar(&d.rate, "rate", 200, "latency: messages a second")
	flag.DurationVar(&d.duration, "duration", 5*time.Second, "latency: how long to send; driver: idle time")
	flag.IntVar(&d.batch, "batch", 1000, "messages per batch call")
	flag.Parse()
	log.SetFlags(0)

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

	o := &orchestrator{
		srv: srv, base: d, bullmqDir: *bullmqDir, idleFor: *idleFor,
		results: map[string]map[string][]measure{},
	}
	systemNames := strings.Split(*sysList, ",")
	for _, s := range systemNames {
		if s != "bullmq" {
			if _, ok := systems[s]; !ok {
				log.Fatalf("unknown system %q", s)
			}
		}
	}
	cases := strings.Split(*scenarios, ",")
	started := time.Now()
	for run := 0; run < *runs; run++ {
		for ci, c := range cases {
			// Alternate: each run and scenario starts with another system.
			k := run + ci
			for i := range systemNames {
				s := systemNames[(i+k)%len(systemNames)]
				log.Printf("run %d/%d %-13s %-8s", run+1, *runs, c, s)
				if err := o.measure(ctx, s, c); err != nil {
					log.Fatalf("%s %s: %v", s, c, err)
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
}

func (s *redisServer) sample(ctx context.Context) (redisSample, error) {
	info, err := s.rdb.Info(ctx, "cpu", "commandstats").Result()
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

// measure is one mark of one run: the driver's figures and Redis's deltas
// since GO.
type measure struct {
	mark
	calls  int64
	cpuSec float64
}

type orchestrator struct {
	srv       *redisServer
	base      driverArgs
	bullmqDir string
	idleFor   time.Duration
	// results[case/mark][system] holds one measure per run.
	results map[string]map[string][]measure
}

// driverCommand returns the child process that runs scenario a.
func (o *orchestrator) driverCommand(a driverArgs) (*exec.Cmd, error) {
	args := []string{
		"-system", a.system, "-scenario", a.scenario, "-addr", a.addr, "-queue", a.queue,
		"-n", fmt.Sprint(a.n), "-handlers", fmt.Sprint(a.handlers), "-size", fmt.Sprint(a.size),
		"-rate", fmt.Sprint(a.rate), "-duration", a.duration.String(), "-batch", fmt.Sprint(a.batch),
	}
	if a.system == "bullmq" {
		return exec.Command("node", append([]string{filepath.Join(o.bullmqDir, "driver.mjs")}, args...)...), nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(self, append([]string{"-driver"}, args...)...), nil
}

// measure runs scenario c ("e2e-8" is e2e with 8 handlers) of system s once.
func (o *orchestrator) measure(ctx context.Context, s, c string) error {
	a := o.base
	a.system, a.addr = s, o.srv.addr
	a.scenario, a.handlers = c, 1
	if name, h, ok := strings.Cut(c, "-"); ok && (name == "e2e" || name == "latency") {
		a.scenario = name
		fmt.Sscan(h, &a.handlers)
	}
	if a.scenario == "idle" {
		a.duration = o.idleFor
	}
	if a.scenario == "enqueue-one" {
		// One call at a time is slow for some systems: a fifth of the
		// messages is plenty to measure it.
		a.n = max(1000, a.n/5)
	}
	if err := o.srv.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	marks, err := o.run(ctx, a)
	if err != nil {
		return err
	}
	for name, m := range marks {
		key := c + "/" + name
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
			m := measure{calls: now.calls - start.calls, cpuSec: now.cpuSec - start.cpuSec}
			if err := jsonUnmarshal(js, &m.mark); err != nil {
				return nil, fmt.Errorf("bad mark %q: %w", line, err)
			}
			marks[name] = m
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

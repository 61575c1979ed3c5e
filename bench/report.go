package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// metric is one row of the report.
type metric struct {
	label  string
	key    string // case/mark
	value  func(m measure) float64
	format string
}

func perMsg(f func(m measure) float64) func(m measure) float64 {
	return func(m measure) float64 {
		if m.N == 0 {
			return 0
		}
		return f(m) / float64(m.N)
	}
}

var (
	rate        = func(m measure) float64 { return float64(m.N) / m.Seconds }
	calls       = perMsg(func(m measure) float64 { return float64(m.calls) })
	redisCPU    = perMsg(func(m measure) float64 { return m.cpuSec * 1e6 })
	clientCPU   = perMsg(func(m measure) float64 { return m.ClientCPUus })
	callsPerSec = func(m measure) float64 { return float64(m.calls) / m.Seconds }
	cpuPercent  = func(m measure) float64 { return 100 * m.cpuSec / m.Seconds }
	latency     = func(p string) func(m measure) float64 {
		return func(m measure) float64 { return float64(m.Latency[p]) / 1000 }
	}
	count = func(k string) func(m measure) float64 {
		return func(m measure) float64 { return float64(m.Counts[k]) }
	}
	memMB       = func(m measure) float64 { return float64(m.memAtMark) / 1e6 }
	memAtGOMB   = func(m measure) float64 { return float64(m.memGO) / 1e6 }
	seconds     = func(m measure) float64 { return m.Seconds }
	memGrowthMB = func(m measure) float64 { return float64(m.memAtMark-m.memGO) / 1e6 }
)

// section is one table of the report: one scenario, with the rows of every
// case of it that ran.
type section struct {
	title, note string
	rows        []metric
}

// delayedLabel names a case's delayed messages in row labels.
func delayedLabel(c caseSpec) string {
	return fmt.Sprintf("%s delayed", thousands(c.delayed))
}

// thousands writes n with commas.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// sections lays out the report's tables for the cases that ran, in the
// order of the scenarios below.
func (o *orchestrator) sections(cases []caseSpec) []section {
	by := func(scenario string) []caseSpec {
		var cs []caseSpec
		for _, c := range cases {
			if c.scenario == scenario {
				cs = append(cs, c)
			}
		}
		return cs
	}
	var out []section

	idle := section{title: "Idle worker with messages delayed by 1 h waiting",
		note: fmt.Sprintf("One worker of 8 handlers, idle; the delayed messages were enqueued first and the worker ran %v before a window of %v. Redis commands (INFO commandstats, all commands, scripts' own calls included) and Redis CPU (used_cpu_sys + used_cpu_user) over the window.",
			o.base.settle, o.idleFor)}
	for _, c := range by("idle") {
		k := c.name + "/done"
		idle.rows = append(idle.rows,
			metric{delayedLabel(c) + ": Redis commands / s", k, callsPerSec, "%.1f"},
			metric{delayedLabel(c) + ": Redis CPU, % of a core", k, cpuPercent, "%.2f"})
	}
	out = append(out, idle)

	light := section{title: "Light load: 200 messages a second, 8 handlers",
		note: fmt.Sprintf("Messages of %d bytes enqueued one call at a time, 200 a second for %v, into one worker of 8 handlers that ran %v first (with the delayed messages already waiting). Redis figures from the first enqueue until the last message reached its handler, per handled message; latency from the enqueue call to the handler's start.",
			o.base.size, o.lightFor, o.base.settle)}
	for _, c := range by("light") {
		k, l := c.name+"/done", delayedLabel(c)
		light.rows = append(light.rows,
			metric{l + ": Redis CPU µs / msg", k, redisCPU, "%.1f"},
			metric{l + ": Redis commands / msg", k, calls, "%.1f"},
			metric{l + ": latency p50 (ms)", k, latency("p50"), "%.2f"},
			metric{l + ": latency p99 (ms)", k, latency("p99"), "%.2f"},
			metric{l + ": latency max (ms)", k, latency("max"), "%.2f"})
	}
	out = append(out, light)

	backlog := section{title: "Backlog: ready messages handled, then collected",
		note: fmt.Sprintf("%s ready messages of %d bytes (after the delayed ones) enqueued before the worker starts; the clock starts with the worker. \"Handled\": every message reached a handler. \"Collected\": handled messages are gone from Redis (see README.md for what that means per system). Redis figures until collected, per ready message.",
			thousands(o.base.n), o.base.size)}
	for _, c := range by("e2e") {
		l := fmt.Sprintf("%d handler(s), %s", c.n, delayedLabel(c))
		backlog.rows = append(backlog.rows,
			metric{l + ": msgs/s until handled", c.name + "/handled", rate, "%.0f"},
			metric{l + ": msgs/s until collected", c.name + "/clean", rate, "%.0f"},
			metric{l + ": Redis CPU µs / msg", c.name + "/clean", redisCPU, "%.1f"},
			metric{l + ": Redis commands / msg", c.name + "/clean", calls, "%.1f"},
			metric{l + ": client CPU µs / msg", c.name + "/handled", clientCPU, "%.1f"})
	}
	out = append(out, backlog)

	enq := section{title: "Enqueue",
		note: fmt.Sprintf("One call at a time: %s messages, each call waiting for its answer, with an idle worker of 8 handlers on another queue of the same Redis in the same process. Batch: %s messages through the best batch API, %d per call.",
			thousands(max(1000, o.base.n/5)), thousands(o.base.n), o.base.batch)}
	for _, c := range by("enqueue-one") {
		k := c.name + "/done"
		enq.rows = append(enq.rows,
			metric{"one at a time: calls / s", k, rate, "%.0f"},
			metric{"one at a time: Redis CPU µs / call", k, redisCPU, "%.1f"},
			metric{"one at a time: Redis commands / call", k, calls, "%.1f"},
			metric{"one at a time: client CPU µs / call", k, clientCPU, "%.1f"})
	}
	for _, c := range by("enqueue-batch") {
		k := c.name + "/done"
		enq.rows = append(enq.rows,
			metric{"batch: msgs / s", k, rate, "%.0f"},
			metric{"batch: Redis CPU µs / msg", k, redisCPU, "%.1f"},
			metric{"batch: Redis commands / msg", k, calls, "%.2f"})
	}
	out = append(out, enq)

	prod := section{title: "Producer: goroutines enqueueing one message per call, no worker",
		note: fmt.Sprintf("G goroutines share one client; each enqueues its share of %s messages of %d bytes one call at a time, waiting for each answer (the single-message enqueue of each system, default options). No worker runs. Latency is per call.",
			thousands(o.base.n), o.base.size)}
	for _, c := range by("producer") {
		k, l := c.name+"/done", fmt.Sprintf("G=%d", c.n)
		prod.rows = append(prod.rows,
			metric{l + ": msgs / s", k, rate, "%.0f"},
			metric{l + ": call p50 (ms)", k, latency("p50"), "%.3f"},
			metric{l + ": call p99 (ms)", k, latency("p99"), "%.3f"},
			metric{l + ": Redis CPU µs / msg", k, redisCPU, "%.1f"},
			metric{l + ": Redis commands / msg", k, calls, "%.2f"},
			metric{l + ": client CPU µs / msg", k, clientCPU, "%.1f"})
	}
	out = append(out, prod)

	lat := section{title: "Latency at 200 messages a second, nothing delayed",
		note: fmt.Sprintf("As the light load, for %v, with the given handlers.", o.base.duration)}
	for _, c := range by("latency") {
		k, l := c.name+"/done", fmt.Sprintf("%d handler(s)", c.n)
		lat.rows = append(lat.rows,
			metric{l + ": p50 (ms)", k, latency("p50"), "%.2f"},
			metric{l + ": p99 (ms)", k, latency("p99"), "%.2f"},
			metric{l + ": max (ms)", k, latency("max"), "%.2f"},
			metric{l + ": Redis CPU µs / msg", k, redisCPU, "%.1f"})
	}
	out = append(out, lat)

	mem := section{title: "Redis memory after handled messages",
		note: fmt.Sprintf("A worker of 8 handlers starts and runs %v; Redis's used_memory then is \"nothing enqueued\". Then %s messages of %s bytes are enqueued, %d per batch call, while it works; used_memory is read again when all were handled, and when they were collected.",
			o.base.settle, thousands(o.memN), thousands(o.memSize), o.base.batch)}
	for _, c := range by("redis-mem") {
		mem.rows = append(mem.rows,
			metric{"used_memory, nothing enqueued (MB)", c.name + "/handled", memAtGOMB, "%.2f"},
			metric{"used_memory, all handled (MB)", c.name + "/handled", memMB, "%.2f"},
			metric{"used_memory, all collected (MB)", c.name + "/clean", memMB, "%.2f"},
			metric{"seconds until all handled", c.name + "/handled", seconds, "%.2f"},
			metric{"seconds until all collected", c.name + "/clean", seconds, "%.2f"})
	}
	out = append(out, mem)

	for _, c := range by("queues") {
		k := c.name + "/done"
		out = append(out, section{title: fmt.Sprintf("%d queues, one idle worker each, one shared client", c.n),
			note: fmt.Sprintf("One process; every worker and every enqueue on ONE go-redis client with default options. The workers run %v, then %d probe messages are enqueued, one every %v, each to another queue, each from its own goroutine. asynq: one Server serving all %d queues (its way of working many queues) with concurrency %d, on the shared client. BullMQ is not run here.",
				o.base.settle, o.base.probes, o.base.probeEvery, c.n, c.n),
			rows: []metric{
				{"enqueue p50 (ms)", k, latency("enq_p50"), "%.2f"},
				{"enqueue p99 (ms)", k, latency("enq_p99"), "%.2f"},
				{"enqueue max (ms)", k, latency("enq_max"), "%.2f"},
				{"enqueue to handler p50 (ms)", k, latency("p50"), "%.2f"},
				{"enqueue to handler p99 (ms)", k, latency("p99"), "%.2f"},
				{"enqueue to handler max (ms)", k, latency("max"), "%.2f"},
				{"probes not handled within 10 ms", k, count("late"), "%.0f"},
				{"probes not handled within 5 s", k, count("lost"), "%.0f"},
				{"probe enqueues that failed", k, count("errors"), "%.0f"},
			}})
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (o *orchestrator) values(key, system string, f func(measure) float64) []float64 {
	var vs []float64
	for _, m := range o.results[key][system] {
		vs = append(vs, f(m))
	}
	return vs
}

// ratio is mq's value over peer's for metric m: the median over the runs
// that both have of the run's own ratio (the systems of one run ran one
// after the other, so their ratio is paired), and ok false when there is
// none or a peer's value is 0.
func (o *orchestrator) ratio(m metric, peer string) (float64, bool) {
	peers := map[int]float64{}
	for _, pm := range o.results[m.key][peer] {
		peers[pm.run] = m.value(pm)
	}
	var rs []float64
	for _, mm := range o.results[m.key]["mq"] {
		if p, ok := peers[mm.run]; ok && p != 0 {
			rs = append(rs, m.value(mm)/p)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

// cell is a median with its range, or the one value of a single run.
func cell(format string, vs []float64) string {
	if len(vs) == 0 {
		return "–"
	}
	if len(vs) == 1 {
		return fmt.Sprintf(format, vs[0])
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(vs), slices.Min(vs), slices.Max(vs))
}

func (o *orchestrator) report(systemNames []string, cases []caseSpec, runs int, mem *memResult, took time.Duration) string {
	var b strings.Builder
	mode := "full run"
	if o.quick {
		mode = "quick run (-quick): small sizes, figures for a check, not for the README"
	}
	fmt.Fprintf(&b, "### Results (%s)\n\n", mode)
	fmt.Fprintf(&b, "%s\n\n", o.machine())
	fmt.Fprintf(&b, "Messages of %d bytes unless said, no-op handlers, %d run(s) of each scenario (those with %s or more delayed: %d), systems in a different order each run, one dedicated redis-server (persistence off), FLUSHALL between runs; took %s.\n",
		o.base.size, runs, thousands(bigDelayed), min(runs, o.bigRuns), took.Round(time.Second))
	fmt.Fprintf(&b, "Each cell: median (min–max) over the runs. A ratio mq/peer is the median of the runs' own ratios (the systems of one run ran back to back); below 1 means mq's figure is the smaller.\n")
	var peers []string
	for _, s := range systemNames {
		if s != "mq" {
			peers = append(peers, s)
		}
	}
	hasMQ := contains(systemNames, "mq")
	for _, sec := range o.sections(cases) {
		var rows []metric
		for _, m := range sec.rows {
			if _, ok := o.results[m.key]; ok {
				rows = append(rows, m)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n#### %s\n\n%s\n\n", sec.title, sec.note)
		cols := slices.Clone(systemNames)
		if hasMQ {
			for _, p := range peers {
				cols = append(cols, "mq/"+p)
			}
		}
		fmt.Fprintf(&b, "| measurement | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
		for _, m := range rows {
			fmt.Fprintf(&b, "| %s |", m.label)
			for _, s := range systemNames {
				fmt.Fprintf(&b, " %s |", cell(m.format, o.values(m.key, s, m.value)))
			}
			if hasMQ {
				for _, p := range peers {
					if r, ok := o.ratio(m, p); ok {
						fmt.Fprintf(&b, " %s |", fmtRatio(r))
					} else {
						b.WriteString(" – |")
					}
				}
			}
			b.WriteString("\n")
		}
	}
	if mem != nil {
		fmt.Fprintf(&b, "\nmq worker heap in use after a GC, 8 handlers: %.1f MiB after 100,000 messages, %.1f MiB after %s.\n",
			float64(mem.at100k)/(1<<20), float64(mem.atEnd)/(1<<20), thousands(mem.n))
	}
	if hasMQ {
		b.WriteString("\n" + o.targets(cases))
	}
	return b.String()
}

func fmtRatio(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	case r < 0.1:
		return fmt.Sprintf("%.3fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// targets checks mq's figures of this run against the goals of issue 12.
func (o *orchestrator) targets(cases []caseSpec) string {
	var b strings.Builder
	b.WriteString("#### Targets of issues 12 and 21, from this run\n\n| target | mq | against | met |\n|---|---|---|---|\n")
	med := func(key, system string, f func(measure) float64) (float64, bool) {
		vs := o.values(key, system, f)
		if len(vs) == 0 {
			return 0, false
		}
		return median(vs), true
	}
	row := func(label, mine, against string, met bool) {
		yes := "**no**"
		if met {
			yes = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", label, mine, against, yes)
	}
	find := func(scenario string, n, delayed int) (caseSpec, bool) {
		for _, c := range cases {
			if c.scenario == scenario && c.n == n && c.delayed == delayed {
				return c, true
			}
		}
		return caseSpec{}, false
	}
	for _, c := range cases {
		if c.scenario != "idle" {
			continue
		}
		k := c.name + "/done"
		cps, ok1 := med(k, "mq", callsPerSec)
		cpu, ok2 := med(k, "mq", cpuPercent)
		if ok1 && ok2 {
			row("idle, "+delayedLabel(c)+": ≤ 10 commands/s and < 1% of a core",
				fmt.Sprintf("%.1f/s, %.2f%%", cps, cpu), "", cps <= 10 && cpu < 1)
		}
	}
	if base, ok := find("light", 0, 0); ok {
		bk := base.name + "/done"
		if b0, ok := med(bk, "mq", redisCPU); ok {
			for _, c := range cases {
				if c.scenario != "light" || c.delayed == 0 {
					continue
				}
				if v, ok := med(c.name+"/done", "mq", redisCPU); ok {
					row("light, "+delayedLabel(c)+": Redis CPU / msg ≤ 1.5x nothing delayed",
						fmt.Sprintf("%.1f µs", v), fmt.Sprintf("%.1f µs (%s)", b0, fmtRatio(v/b0)), v <= 1.5*b0)
				}
			}
			if r, ok := o.ratio(metric{key: bk, value: redisCPU}, "asynq"); ok {
				a, _ := med(bk, "asynq", redisCPU)
				row("light, nothing delayed: Redis CPU / msg ≤ asynq's", fmt.Sprintf("%.1f µs", b0),
					fmt.Sprintf("%.1f µs (%s)", a, fmtRatio(r)), r <= 1)
			}
		}
		if p99, ok := med(bk, "mq", latency("p99")); ok {
			row("light, nothing delayed: latency p99 ≤ 2 ms", fmt.Sprintf("%.2f ms", p99), "", p99 <= 2)
		}
	}
	for _, h := range []int{1, 8} {
		base, ok := find("e2e", h, 0)
		if !ok {
			continue
		}
		b0, ok := med(base.name+"/clean", "mq", rate)
		if !ok {
			continue
		}
		for _, c := range cases {
			if c.scenario != "e2e" || c.n != h || c.delayed == 0 {
				continue
			}
			if v, ok := med(c.name+"/clean", "mq", rate); ok {
				row(fmt.Sprintf("backlog, %d handler(s), %s: msgs/s until collected ≥ 0.8x nothing delayed", h, delayedLabel(c)),
					fmt.Sprintf("%.0f", v), fmt.Sprintf("%.0f (%s)", b0, fmtRatio(v/b0)), v >= 0.8*b0)
			}
		}
		best, bestName := 0.0, ""
		for _, p := range []string{"asynq", "bullmq", "carmine"} {
			if v, ok := med(base.name+"/clean", p, rate); ok && v > best {
				best, bestName = v, p
			}
		}
		if bestName != "" {
			row(fmt.Sprintf("backlog, %d handler(s): msgs/s until collected ≥ 3x the best peer", h),
				fmt.Sprintf("%.0f", b0), fmt.Sprintf("%.0f (%s; %s)", best, bestName, fmtRatio(b0/best)), b0 >= 3*best)
		}
	}
	if c, ok := find("enqueue-one", 0, 0); ok {
		k := c.name + "/done"
		if r, ok := o.ratio(metric{key: k, value: rate}, "asynq"); ok {
			v, _ := med(k, "mq", rate)
			a, _ := med(k, "asynq", rate)
			row("enqueue one at a time: calls/s ≥ 1.5x asynq", fmt.Sprintf("%.0f", v), fmt.Sprintf("%.0f (%s)", a, fmtRatio(r)), r >= 1.5)
		}
		if r, ok := o.ratio(metric{key: k, value: redisCPU}, "asynq"); ok {
			v, _ := med(k, "mq", redisCPU)
			a, _ := med(k, "asynq", redisCPU)
			row("enqueue one at a time: Redis CPU / call < asynq's", fmt.Sprintf("%.1f µs", v), fmt.Sprintf("%.1f µs (%s)", a, fmtRatio(r)), r < 1)
		}
	}
	// Issue 21: the producer path, as ratios to asynq of this run.
	for _, g := range []struct {
		n        int
		rate     float64
		cpu, p99 bool
	}{{1, 1.0, true, false}, {8, 1.5, false, false}, {64, 3, false, true}} {
		c, ok := find("producer", g.n, 0)
		if !ok {
			continue
		}
		k := c.name + "/done"
		if r, ok := o.ratio(metric{key: k, value: rate}, "asynq"); ok {
			v, _ := med(k, "mq", rate)
			a, _ := med(k, "asynq", rate)
			row(fmt.Sprintf("producer G=%d: msgs/s ≥ %.1fx asynq", g.n, g.rate), fmt.Sprintf("%.0f", v), fmt.Sprintf("%.0f (%s)", a, fmtRatio(r)), r >= g.rate)
		}
		if r, ok := o.ratio(metric{key: k, value: redisCPU}, "asynq"); ok && g.cpu {
			v, _ := med(k, "mq", redisCPU)
			a, _ := med(k, "asynq", redisCPU)
			row(fmt.Sprintf("producer G=%d: Redis CPU / msg ≤ asynq's", g.n), fmt.Sprintf("%.1f µs", v), fmt.Sprintf("%.1f µs (%s)", a, fmtRatio(r)), r <= 1)
		}
		if r, ok := o.ratio(metric{key: k, value: latency("p99")}, "asynq"); ok && g.p99 {
			v, _ := med(k, "mq", latency("p99"))
			a, _ := med(k, "asynq", latency("p99"))
			row(fmt.Sprintf("producer G=%d: call p99 ≤ asynq's", g.n), fmt.Sprintf("%.2f ms", v), fmt.Sprintf("%.2f ms (%s)", a, fmtRatio(r)), r <= 1)
		}
	}
	if c, ok := find("redis-mem", 0, 0); ok {
		// "Close to that of the messages still waiting" (none): the growth
		// over nothing enqueued, after all were handled, is taken as met
		// under 5% of the bytes handled.
		handled := float64(o.memN) * float64(o.memSize) / 1e6
		if g, ok := med(c.name+"/handled", "mq", memGrowthMB); ok {
			against := fmt.Sprintf("%.1f MB handled", handled)
			if a, ok := med(c.name+"/handled", "asynq", memGrowthMB); ok {
				against += fmt.Sprintf("; asynq +%.2f MB", a)
			}
			row("Redis memory right after all handled: growth < 5% of the bytes handled", fmt.Sprintf("+%.2f MB", g), against, g < 0.05*handled)
		}
	}
	for _, c := range cases {
		if c.scenario != "queues" {
			continue
		}
		k := c.name + "/done"
		if p99, ok := med(k, "mq", latency("enq_p99")); ok {
			row(fmt.Sprintf("%d queues: enqueue p99 < 5 ms", c.n), fmt.Sprintf("%.2f ms", p99), "", p99 < 5)
		}
		if late, ok := med(k, "mq", count("late")); ok {
			row(fmt.Sprintf("%d queues: every probe handled within 10 ms", c.n), fmt.Sprintf("%.0f of %d late", late, o.base.probes), "", late == 0 && !math.IsNaN(late))
		}
	}
	b.WriteString("\nEnqueueMany's target (as fast as today or faster) has no figure of its own here: compare the batch row with the README's.\n")
	return b.String()
}

// machine describes where the figures come from.
func (o *orchestrator) machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	redisVersion := "?"
	if info, err := o.srv.rdb.Info(bgCtx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
				redisVersion = v
			}
		}
	}
	deps := []string{"redis " + redisVersion, runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/hibiken/asynq" || d.Path == "github.com/redis/go-redis/v9" {
				deps = append(deps, strings.TrimPrefix(d.Path, "github.com/")+" "+d.Version)
			}
		}
	}
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		deps = append(deps, "node "+strings.TrimSpace(string(out)))
	}
	var pkg struct{ Version string }
	if data, err := os.ReadFile(filepath.Join(o.bullmqDir, "node_modules", "bullmq", "package.json")); err == nil && json.Unmarshal(data, &pkg) == nil {
		deps = append(deps, "bullmq "+pkg.Version)
	}
	rev := "unknown commit"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--", "..").Output(); err == nil && len(st) > 0 {
			rev += " (with uncommitted changes)"
		}
	}
	return fmt.Sprintf("Machine: %s, %d cores, %s/%s. Versions: %s; mq at %s.", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.Join(deps, ", "), rev)
}

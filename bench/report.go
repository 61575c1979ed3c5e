package main

import (
	"encoding/json"
	"fmt"
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
	higher bool // higher is better
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
	rate      = func(m measure) float64 { return float64(m.N) / m.Seconds }
	calls     = perMsg(func(m measure) float64 { return float64(m.calls) })
	redisCPU  = perMsg(func(m measure) float64 { return m.cpuSec * 1e6 })
	clientCPU = perMsg(func(m measure) float64 { return m.ClientCPUus })
	latency   = func(p string) func(m measure) float64 {
		return func(m measure) float64 { return float64(m.Latency[p]) / 1000 }
	}
	callsPerSec = func(m measure) float64 { return float64(m.calls) / m.Seconds }
)

func metrics() []metric {
	ms := []metric{
		{"enqueue, one call at a time (msgs/s)", "enqueue-one/done", rate, "%.0f", true},
		{"enqueue, best batch API (msgs/s)", "enqueue-batch/done", rate, "%.0f", true},
		{"end to end, 1 handler (msgs/s)", "e2e-1/handled", rate, "%.0f", true},
		{"end to end, 8 handlers (msgs/s)", "e2e-8/handled", rate, "%.0f", true},
	}
	for _, h := range []string{"1", "8"} {
		k := "e2e-" + h
		ms = append(ms,
			metric{"e2e " + h + ": Redis commands / msg", k + "/handled", calls, "%.1f", false},
			metric{"e2e " + h + ": Redis CPU µs / msg", k + "/handled", redisCPU, "%.1f", false},
			metric{"e2e " + h + ": Redis CPU µs / msg, cleanup included", k + "/clean", redisCPU, "%.1f", false},
			metric{"e2e " + h + ": client CPU µs / msg", k + "/handled", clientCPU, "%.1f", false},
		)
	}
	ms = append(ms,
		metric{"enqueue one: Redis commands / msg", "enqueue-one/done", calls, "%.1f", false},
		metric{"enqueue one: Redis CPU µs / msg", "enqueue-one/done", redisCPU, "%.1f", false},
		metric{"enqueue one: client CPU µs / msg", "enqueue-one/done", clientCPU, "%.1f", false},
		metric{"enqueue batch: Redis CPU µs / msg", "enqueue-batch/done", redisCPU, "%.1f", false},
	)
	for _, h := range []string{"1", "8"} {
		k := "latency-" + h + "/done"
		ms = append(ms,
			metric{"latency at 200/s, " + h + " handler(s): p50 (ms)", k, latency("p50"), "%.2f", false},
			metric{"latency at 200/s, " + h + " handler(s): p99 (ms)", k, latency("p99"), "%.2f", false},
			metric{"latency at 200/s, " + h + " handler(s): max (ms)", k, latency("max"), "%.2f", false},
		)
	}
	ms = append(ms, metric{"idle: Redis commands / s (one worker)", "idle/done", callsPerSec, "%.1f", false})
	return ms
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

func (o *orchestrator) report(systemNames, cases []string, runs int, mem *memResult, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Results\n\n")
	fmt.Fprintf(&b, "%s\n\n", o.machine())
	fmt.Fprintf(&b, "N = %d messages of %d bytes (one call at a time: %d), no-op handlers, %d runs of each, systems alternating; took %s.\n",
		o.base.n, o.base.size, max(1000, o.base.n/5), runs, took.Round(time.Second))
	fmt.Fprintf(&b, "Each cell: median (min–max).\n\n")
	fmt.Fprintf(&b, "| measurement | %s |\n|---|%s\n", strings.Join(systemNames, " | "), strings.Repeat("---|", len(systemNames)))
	for _, m := range metrics() {
		if _, ok := o.results[m.key]; !ok {
			continue
		}
		fmt.Fprintf(&b, "| %s |", m.label)
		for _, s := range systemNames {
			vs := o.values(m.key, s, m.value)
			if len(vs) == 0 {
				b.WriteString(" – |")
				continue
			}
			lo, hi := slices.Min(vs), slices.Max(vs)
			fmt.Fprintf(&b, " "+m.format+" ("+m.format+"–"+m.format+") |", median(vs), lo, hi)
		}
		b.WriteString("\n")
	}
	if mem != nil {
		fmt.Fprintf(&b, "\nmq worker heap in use after a GC, 8 handlers: %.1f MiB after 100,000 messages, %.1f MiB after %d.\n",
			float64(mem.at100k)/(1<<20), float64(mem.atEnd)/(1<<20), mem.n)
	}
	if contains(systemNames, "mq") && len(systemNames) > 1 {
		b.WriteString("\n" + o.targets(systemNames))
	}
	return b.String()
}

// targets states the targets as ratios of medians, mq against the
// best other system, or against the one system a target names.
func (o *orchestrator) targets(systemNames []string) string {
	var b strings.Builder
	b.WriteString("| target | mq | compared with | ratio |\n|---|---|---|---|\n")
	for _, t := range []struct {
		label  string
		m      metric
		versus string // the system to compare with; "" for the best other
	}{
		{"end to end, 8 handlers (≥ 2x)", metric{key: "e2e-8/handled", value: rate, higher: true}, ""},
		{"end to end, 1 handler (≥ 2x)", metric{key: "e2e-1/handled", value: rate, higher: true}, ""},
		{"Redis CPU µs / msg, 8 handlers, cleanup included (≤ 25)", metric{key: "e2e-8/clean", value: redisCPU}, ""},
		{"enqueue one at a time (≥ asynq)", metric{key: "enqueue-one/done", value: rate, higher: true}, "asynq"},
		{"enqueue batch msgs/s (≥ 100,000)", metric{key: "enqueue-batch/done", value: rate, higher: true}, ""},
		{"latency p99 ms, 1 handler (≤ 2)", metric{key: "latency-1/done", value: latency("p99")}, ""},
		{"idle Redis commands / s (≤ 10)", metric{key: "idle/done", value: callsPerSec}, ""},
	} {
		if _, ok := o.results[t.m.key]; !ok {
			continue
		}
		mine := o.values(t.m.key, "mq", t.m.value)
		if len(mine) == 0 {
			continue
		}
		best, bestName := 0.0, ""
		for _, s := range systemNames {
			if s == "mq" || (t.versus != "" && s != t.versus) {
				continue
			}
			vs := o.values(t.m.key, s, t.m.value)
			if len(vs) == 0 {
				continue
			}
			v := median(vs)
			if bestName == "" || (t.m.higher && v > best) || (!t.m.higher && v < best) {
				best, bestName = v, s
			}
		}
		mv := median(mine)
		ratio := "–"
		if best > 0 {
			ratio = fmt.Sprintf("%.2fx", mv/best)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f (%s) | %s |\n", t.label, mv, best, bestName, ratio)
	}
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
	return fmt.Sprintf("Machine: %s, %d cores, %s/%s. Versions: %s.", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, strings.Join(deps, ", "))
}

package protocol

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The cost benchmarks (BenchmarkPollKeySets, BenchmarkPollFollowUps,
// BenchmarkEnqueueNewCost) measure what Redis spends on a script: by
// default the usec INFO commandstats gives, on a throwaway redis-server;
// with LEAN_BENCH_ADDR and LEAN_BENCH_PID naming a redis-server run under
// valgrind --tool=callgrind (writing its dumps to CALLGRIND_DIR), in
// instructions, which a busy machine does not blur. Run that server with
// --hz 1: its timer refreshes the allocator's statistics ten times a
// second by default, work that grows with the run's wall time (5% of a
// run's count on a machine at load 20, against 1.5% idle) and not with
// what the script does; CALLGRIND_NET takes serverCron's share out of
// the count too (callgrindTotal).

// costServer answers the server a cost benchmark measures, and the pid
// of the redis-server under callgrind ("" for a throwaway server).
func costServer(b *testing.B) (*queuetest.Server, string) {
	addr, pid := os.Getenv("LEAN_BENCH_ADDR"), os.Getenv("LEAN_BENCH_PID")
	if addr == "" {
		r := redistest.Start(b)
		return &queuetest.Server{RDB: r.Client(b), Real: r}, ""
	}
	require.NotEmpty(b, pid, "LEAN_BENCH_ADDR without LEAN_BENCH_PID")
	rdb := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: time.Minute})
	b.Cleanup(func() { rdb.Close() })
	return &queuetest.Server{RDB: rdb}, pid
}

// callgrindControl runs callgrind_control with arg on process pid.
func callgrindControl(b *testing.B, arg, pid string) {
	out, err := exec.Command("callgrind_control", arg, pid).CombinedOutput()
	require.NoError(b, err, string(out))
}

// callgrindTotal answers the instructions of callgrind's latest dump of
// process pid (in the working directory of the server, CALLGRIND_DIR).
// With CALLGRIND_NET set, less what serverCron ran (callgrind_annotate's
// inclusive figure): the cron runs hz times a second of wall time, so
// its share of a call follows how fast the run went (one to four
// thousand instructions a call on a loaded machine), not what the call
// costs.
func callgrindTotal(b *testing.B, pid string) int64 {
	files, err := filepath.Glob(filepath.Join(os.Getenv("CALLGRIND_DIR"), "callgrind.out."+pid+".*"))
	require.NoError(b, err)
	require.NotEmpty(b, files)
	slices.SortFunc(files, func(x, y string) int {
		nx, _ := strconv.Atoi(x[strings.LastIndex(x, ".")+1:])
		ny, _ := strconv.Atoi(y[strings.LastIndex(y, ".")+1:])
		return nx - ny
	})
	data, err := os.ReadFile(files[len(files)-1])
	require.NoError(b, err)
	m := regexp.MustCompile(`(?m)^(?:totals|summary): (\d+)`).FindSubmatch(data)
	require.NotNil(b, m)
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	if os.Getenv("CALLGRIND_NET") != "" {
		out, err := exec.Command("callgrind_annotate", "--inclusive=yes", files[len(files)-1]).Output()
		require.NoError(b, err)
		if c := regexp.MustCompile(`(?m)^\s*([\d,]+) .*:serverCron `).FindSubmatch(out); c != nil {
			cron, _ := strconv.ParseInt(strings.ReplaceAll(string(c[1]), ",", ""), 10, 64)
			n -= cron
		}
	}
	return n
}

// usecOf answers the calls and usec of command cmd in INFO commandstats.
func usecOf(info, cmd string) [2]float64 {
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		var out [2]float64
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				out[0], _ = strconv.ParseFloat(v, 64)
			case "usec":
				out[1], _ = strconv.ParseFloat(v, 64)
			}
		}
		return out
	}
	return [2]float64{}
}

// reportMedians reports, for each name in order, the median of its
// rounds in got, as <name>-µs/<per>, or -instr/<per> under callgrind
// (pid set); a name without rounds (a warm-up) is left out.
func reportMedians(b *testing.B, got map[string][]float64, names []string, per, pid string) {
	unit := "-µs/" + per
	if pid != "" {
		unit = "-instr/" + per
	}
	for _, name := range names {
		if len(got[name]) == 0 {
			continue
		}
		xs := slices.Sorted(slices.Values(got[name]))
		b.ReportMetric(xs[len(xs)/2], name+unit)
	}
}

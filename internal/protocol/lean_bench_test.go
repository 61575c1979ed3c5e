package protocol

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// BenchmarkPollKeySets measures what Redis spends on one poll call (an
// outcome recorded and a message handed out, as a busy worker's call) by
// the keys it passes and the composition it runs, on a queue that uses no
// extension: the lean call's two savings apart (docs/protocol.md §4). The
// variants run in interleaved rounds on one redis-server; each reports
// the median of its rounds' µs of Redis per call (EVALSHA's usec in
// INFO commandstats, the script's whole run), as <variant>-µs/call.
// Run: go test -run '^$' -bench PollKeySets -benchtime 1x . (with
// LEAN_BENCH_EMPTY=1, calls that record nothing and take no step: the
// script's fixed cost alone).
func BenchmarkPollKeySets(b *testing.B) {
	calls, rounds := 3000, 7
	// Under callgrind (costServer), the variants are measured in
	// instructions per call.
	s, pid := costServer(b)
	if pid != "" {
		calls, rounds = 4000, 1
	}
	ctx := context.Background()
	type variant struct {
		name   string
		script *redis.Script
		nkeys  int
		old    bool // b8863a0's arguments (base)
	}
	variants := []variant{
		{"lean38", dequeueLeanScript, LeanKeys, false},
		{"full52", dequeueScript, 52, false},
		{"lean52", dequeueLeanScript, 52, false},
		{"full38", dequeueScript, LeanKeys, false},
		{"limits52", dequeueLimitsScript, 52, false},
	}
	// LEAN_BENCH_BASE names another commit's composed dequeue (outcome
	// groups of five, before results and follow-ups), run as "base",
	// second.
	if base := os.Getenv("LEAN_BENCH_BASE"); base != "" {
		src, err := os.ReadFile(base)
		require.NoError(b, err)
		variants = slices.Insert(variants, 1, variant{"base", redis.NewScript(string(src)), LeanKeys, true})
	}
	// LEAN_BENCH_ALT names a composed dequeue of this commit's arguments,
	// run as "alt", last: a change tried before it is made.
	if alt := os.Getenv("LEAN_BENCH_ALT"); alt != "" {
		src, err := os.ReadFile(alt)
		require.NoError(b, err)
		variants = append(variants, variant{"alt", redis.NewScript(string(src)), LeanKeys, false})
	}
	// LEAN_BENCH_LIMITS puts every message at high priority and the queue
	// under limits at bounds never reached, as the bench systems do
	// (§18, §19): "limits" a rate and a concurrency limit (mq-limits),
	// "jobs" those per key too, each message with one of 16 limit keys
	// (mq-jobs); "prio" the priority alone, to tell its share. Only the
	// compositions with limits.lua enforce limits: run full52, limits52
	// (the lean one with limits.lua, §4) and alt, which passes every key
	// then.
	limitsMode := os.Getenv("LEAN_BENCH_LIMITS")
	if limitsMode != "" {
		for i := range variants {
			if variants[i].name == "alt" {
				variants[i].nkeys = 52
			}
		}
	}
	// LEAN_BENCH_ONLY keeps only the variants it names (comma-separated).
	if only := os.Getenv("LEAN_BENCH_ONLY"); only != "" {
		variants = slices.DeleteFunc(variants, func(v variant) bool {
			return !slices.Contains(strings.Split(only, ","), v.name)
		})
	}
	// Under callgrind, the first variant run on a fresh server counted
	// 6-10k instructions a call more than the same script run later (the
	// server's own tables grow then): a first, unreported run of it
	// ("warm") takes that cost.
	if pid != "" && len(variants) > 0 {
		warm := variants[0]
		warm.name = "warm"
		variants = slices.Insert(variants, 0, warm)
	}
	batch := 1
	if n, err := strconv.Atoi(os.Getenv("LEAN_BENCH_BATCH")); err == nil && n > 0 {
		batch = n
	}
	got := map[string][]float64{}
	for round := range rounds {
		for _, v := range variants {
			q := fmt.Sprintf("bench:%s:%d", v.name, round)
			ks := s.Keys(q)[:v.nkeys]
			for i := 0; i < calls; i += 500 {
				msgs := make([]EnqueueMessage, 500)
				for j := range msgs {
					msgs[j] = EnqueueMessage{ID: strconv.Itoa(i + j), Data: []byte("payload")}
					if limitsMode != "" {
						msgs[j].Priority = PriorityHigh
					}
					if limitsMode == "jobs" {
						msgs[j].LimitKey = "k" + strconv.Itoa((i+j)%16)
					}
				}
				a := Enqueue(ctx, s.RDB, s.Keys(q), EnqueueCall{Token: randomToken(), Keep: time.Minute, Messages: msgs})
				require.NoError(b, a.Err)
			}
			if limitsMode != "" && limitsMode != "prio" {
				lots := RateArg(1_000_000, 1000, 1_000_000)
				l := Limits{Rate: lots, Concurrency: "10000"}
				if limitsMode == "jobs" {
					l.KeyRate, l.KeyConcurrency = lots, "10000"
				}
				_, err := SetLimits(ctx, s.RDB, s.Keys(q), l)
				require.NoError(b, err)
			}
			require.NoError(b, s.RDB.(*redis.Client).ConfigResetStat(ctx).Err())
			a := PollArgs{LockTime: time.Minute, MaxSteps: batch, MaxHandles: batch, Poller: randomToken(), Held: 0}
			a.Sleeps = [5]time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second}
			if os.Getenv("LEAN_BENCH_EMPTY") != "" {
				a.MaxSteps = 0 // the chunk's own cost: no outcome, no step
			}
			for i := range calls / batch {
				if i == 10 && pid != "" {
					callgrindControl(b, "-z", pid) // (after the first calls: the enqueues' garbage is collected)
				}
				a.Seq++
				argv := a.argv(nil, 0)
				if v.old {
					argv = argv5(a)
				}
				raw, err := v.script.Run(ctx, s.RDB, ks, argv...).Slice()
				require.NoError(b, err)
				reply, err := parsePollReply(raw)
				require.NoError(b, err)
				a.Confirmed = a.Seq
				a.Completions = a.Completions[:0]
				for _, st := range reply.Steps {
					if st.Kind == StepHandle {
						a.Completions = append(a.Completions, Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess})
					}
				}
			}
			if pid != "" {
				callgrindControl(b, "-d", pid)
				got[v.name] = append(got[v.name], float64(callgrindTotal(b, pid))/float64((calls/batch-10)*batch))
				continue
			}
			info, err := s.RDB.(*redis.Client).Info(ctx, "commandstats").Result()
			require.NoError(b, err)
			// LEAN_BENCH_CMDS names a file to which the first round's
			// commandstats of each variant are appended.
			if f := os.Getenv("LEAN_BENCH_CMDS"); f != "" && round == 0 {
				out := fmt.Sprintf("# %s, %d calls of %d\n%s\n", v.name, calls/batch, batch, info)
				fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				require.NoError(b, err)
				_, err = fh.WriteString(out)
				require.NoError(b, errors.Join(err, fh.Close()))
			}
			m := usecOf(info, "evalsha")
			require.NotZero(b, m[0], info)
			got[v.name] = append(got[v.name], m[1]/m[0]/float64(batch))
		}
	}
	var names []string
	for _, v := range variants {
		if v.name != "warm" {
			names = append(names, v.name)
		}
	}
	reportMedians(b, got, names, "msg", pid)
}

// argv5 is a's arguments as dequeue.lua took them before results and
// follow-ups: outcome groups of five.
func argv5(a PollArgs) []any {
	full := a.argv(nil, 0)
	n := len(a.Completions)
	args := append([]any{}, full[:18]...)
	for i := range n {
		args = append(args, full[18+7*i:18+7*i+5]...)
	}
	return append(args, full[18+7*n])
}

package protocol

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// refEnqueueScript is a reference single enqueue of the shape asynq
// v0.26.0's takes (written here from its documented behaviour, not
// copied): two keys (the task's hash, the pending list), three arguments
// (the encoded task, its id, the time), and three commands (EXISTS, one
// HSET of three fields, LPUSH). It is what issue 21's "no more Redis CPU
// per call than asynq's" is measured against without running asynq.
var refEnqueueScript = redis.NewScript(`
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], 'msg', ARGV[1], 'state', 'pending', 'pending_since', ARGV[3])
redis.call('lpush', KEYS[2], ARGV[2])
return 1`)

// BenchmarkEnqueueNewCost measures what Redis spends on one single-message
// enqueue from a request handler (Enqueue of a new id, no options, a
// first send, the lean script of docs/protocol.md §3), beside the
// reference script of asynq's shape (refEnqueueScript, with a 170-byte
// encoded task: asynq wraps a 100-byte payload in its task message).
// Each call is one round trip, as a lone producer makes it, so the figures
// include Redis's reading of the request and writing of the reply. "lean"
// is a client that knows no backlog (every call full), "short" one that
// remembers it (its calls short once mids-ready holds the wake backlog,
// WakeBacklog ids: every call measured under callgrind, whose warm-up is
// longer).
//
// By default it reports the median over interleaved rounds of µs per call
// (EVALSHA's usec in INFO commandstats: the script's run alone). With
// LEAN_BENCH_ADDR and LEAN_BENCH_PID naming a redis-server run under
// valgrind --tool=callgrind (dumps in CALLGRIND_DIR), it reports
// instructions per call of the whole server process, network included.
// ENQUEUE_BENCH_ALT names a composed enqueue-new script taking the same
// keys and arguments, run as "alt": a change tried before it is made.
// ENQUEUE_BENCH_ONLY, a comma-separated list of variant names, runs those
// alone (in the order above), to spare callgrind's time.
// Run: go test -run '^$' -bench EnqueueNewCost -benchtime 1x .
func BenchmarkEnqueueNewCost(b *testing.B) {
	calls, rounds, warm := 3000, 7, 0
	s, pid := costServer(b)
	if pid != "" {
		calls, rounds, warm = 6000, 1, 2000
	}
	ctx := context.Background()
	payload := []byte(strings.Repeat("p", 100))
	task := []byte(strings.Repeat("t", 170))
	var alt *redis.Script
	if f := os.Getenv("ENQUEUE_BENCH_ALT"); f != "" {
		src, err := os.ReadFile(f)
		require.NoError(b, err)
		alt = redis.NewScript(string(src))
	}
	backlogs := new(Backlogs)
	run := map[string]func(q string, i int) error{
		"lean": func(q string, i int) error {
			call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true,
				Messages: []EnqueueMessage{{ID: uuid.New(), Data: payload, FreshID: true}}}
			return Enqueue(ctx, s.RDB, s.Keys(q), call).Err
		},
		// short: as lean, from a client that remembers the queue's
		// backlog, so that its calls go short once the backlog is there
		// (docs/protocol.md §3), as they do past the warm-up under
		// callgrind.
		"short": func(q string, i int) error {
			call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true, Backlogs: backlogs,
				Messages: []EnqueueMessage{{ID: uuid.New(), Data: payload, FreshID: true}}}
			return Enqueue(ctx, s.RDB, s.Keys(q), call).Err
		},
		// default and default-given: as lean, from a client of the
		// default Config (Carmine workers possible: no IndexOnly), for an
		// id it drew itself (FreshID: no stale meta to delete, so neither
		// lock-times nor meta passed) and for an id the producer gave.
		"default": func(q string, i int) error {
			call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute,
				Messages: []EnqueueMessage{{ID: uuid.New(), Data: payload, FreshID: true}}}
			return Enqueue(ctx, s.RDB, s.Keys(q), call).Err
		},
		"default-given": func(q string, i int) error {
			call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute,
				Messages: []EnqueueMessage{{ID: fmt.Sprintf("%036d", i), Data: payload}}}
			return Enqueue(ctx, s.RDB, s.Keys(q), call).Err
		},
		"ref": func(q string, i int) error {
			id := fmt.Sprintf("%036d", i)
			return refEnqueueScript.Run(ctx, s.RDB, []string{"asynq:{" + q + "}:t:" + id, "asynq:{" + q + "}:pending"},
				task, id, time.Now().UnixNano()).Err()
		},
	}
	names := []string{"ref", "lean", "short", "default", "default-given"} // ref first: the keys it creates (one a call) may start a rehash of the keyspace, which the next variant would pay
	if only := os.Getenv("ENQUEUE_BENCH_ONLY"); only != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(strings.Split(only, ","), n) })
	}
	if alt != nil {
		// Loaded first: the call's first-send token is empty when sent
		// again as EVAL after NOSCRIPT, and the script then steps aside.
		require.NoError(b, alt.Load(ctx, s.RDB).Err())
		names = append(names, "alt")
		run["alt"] = func(q string, i int) error {
			call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true,
				Messages: []EnqueueMessage{{ID: fmt.Sprintf("%036d", i), Data: payload}}}
			return alt.Run(ctx, s.RDB, leanKeys(s.Keys(q), call, false), leanArgv(call)...).Err()
		}
	}
	got := map[string][]float64{}
	for round := range rounds {
		for _, name := range names {
			q := fmt.Sprintf("bench:%s:%d:%s", name, round, randomToken())
			require.NoError(b, s.RDB.(*redis.Client).ConfigResetStat(ctx).Err())
			for i := range calls {
				if i == warm && pid != "" {
					callgrindControl(b, "-z", pid)
				}
				require.NoError(b, run[name](q, i))
			}
			if pid != "" {
				callgrindControl(b, "-d", pid)
				got[name] = append(got[name], float64(callgrindTotal(b, pid))/float64(calls-warm))
				continue
			}
			info, err := s.RDB.(*redis.Client).Info(ctx, "commandstats").Result()
			require.NoError(b, err)
			m := usecOf(info, "evalsha")
			require.NotZero(b, m[0], info)
			got[name] = append(got[name], m[1]/m[0])
		}
	}
	reportMedians(b, got, names, "call", pid)
}

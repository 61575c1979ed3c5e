package mq

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The measures of issue 19, part 4 (docs/protocol.md §19), on a real Redis
// with worker processes: each child is this test binary run again, as
// TestHelperLimitsWorker, printing a line per handling start ("s <id>
// <unix ns>") and end ("e <id> <unix ns>"). The figures are computed from
// those lines, the handling history, never from sleeps. Set
// MQ_LIMITS_LONG=1 for the long runs (30 s); CI runs a few
// seconds.

// limitsRunFor is how long the rate measure runs.
func limitsRunFor() time.Duration {
	if os.Getenv("MQ_LIMITS_LONG") != "" {
		return 30 * time.Second
	}
	return 4 * time.Second
}

// limitsChild runs TestHelperLimitsWorker in mode on queue q; its lines go
// to lines, each with the child's number.
type limitsLine struct {
	child int
	kind  string // "s", "e", or "l" for a lag
	id    string
	at    time.Time
	age   time.Duration // Message.Age, on "s" lines: the hand-out less the first enqueue, by the server's clock; on "l" lines the lag
}

type limitsChildren struct {
	mu    sync.Mutex
	lines []limitsLine
	cmds  []*exec.Cmd
}

func startLimitsChildren(t *testing.T, s *queuetest.Server, q, mode string, n int) *limitsChildren {
	t.Helper()
	lc := &limitsChildren{}
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLimitsWorker$")
		cmd.Env = append(os.Environ(), "MQ_HELPER_REDIS="+s.Real.Addr, "MQ_HELPER_QUEUE="+q, "MQ_HELPER_LIMITS="+mode)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lc.cmds = append(lc.cmds, cmd)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 4 || (f[0] != "s" && f[0] != "e" && f[0] != "l") {
					continue
				}
				ns, err := strconv.ParseInt(f[2], 10, 64)
				if err != nil {
					continue
				}
				age, err := strconv.ParseInt(f[3], 10, 64)
				if err != nil {
					continue
				}
				lc.mu.Lock()
				lc.lines = append(lc.lines, limitsLine{child: i, kind: f[0], id: f[1], at: time.Unix(0, ns), age: time.Duration(age)})
				lc.mu.Unlock()
			}
		}()
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	return lc
}

func (lc *limitsChildren) snapshot() []limitsLine {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return slices.Clone(lc.lines)
}

func (lc *limitsChildren) count(kind string) int {
	n := 0
	for _, l := range lc.snapshot() {
		if l.kind == kind {
			n++
		}
	}
	return n
}

// maxInWindow answers the most of the sorted times ts within any window
// of length w (half open).
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, i := 0, 0
	for j := range ts {
		for ts[j].Sub(ts[i]) >= w {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

// TestLimitsRateAcrossProcesses: a rate limit of 100/s (burst 3) shared by
// 3 worker processes, with a backlog that never runs out. The limiter's
// promise, by the server's clock (each hand-out is its message's
// first-enqueue time plus Message.Age): no window of 1 s holds more than
// 105 hand-outs, nor the run more than 100/s and the burst; and it holds
// back no token a worker could take: over the run at least 95/s, less the
// tokens the workers could not ask for. Those are the machine's, not the
// limiter's: with a burst of 3, a token not taken within 30 ms of coming
// due is gone, and on a busy machine the children are not run for longer
// than that; each child reports the lags of its own scheduling ("l"
// lines), and a lag of d forfeits at most 100/s * d - 3 tokens. On a
// quiet machine that excuses nothing, and a limiter handing out too few
// fails.
func TestLimitsRateAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	run := limitsRunFor()
	const perSec, burst = 100, 3
	require.NoError(t, c.Inspector().SetLimits(ctx, q, Limits{Rate: Rate{N: perSec, Per: time.Second, Burst: burst}}))
	total := int(run.Seconds())*perSec*2 + 300
	reqs := make([]EnqueueRequest, total)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("m%d", i)}}
	}
	_, err := c.EnqueueMany(ctx, q, reqs...)
	require.NoError(t, err)
	// Each message's first-enqueue time by the server's clock: its
	// hand-out is that plus Message.Age.
	udts, err := s.RDB.HGetAll(ctx, s.Key(q, keys.UDTs)).Result()
	require.NoError(t, err)
	lc := startLimitsChildren(t, s, q, "rate", 3)
	handouts := func() []time.Time {
		var hs []time.Time
		for _, l := range lc.snapshot() {
			if l.kind == "s" {
				udt, err := strconv.ParseInt(udts[l.id], 10, 64)
				require.NoError(t, err)
				hs = append(hs, time.UnixMilli(udt).Add(l.age))
			}
		}
		slices.SortFunc(hs, func(a, b time.Time) int { return a.Compare(b) })
		return hs
	}

	queuetest.WaitFor(t, "a first handling", func() bool { return lc.count("s") > 0 })
	// The run: from the first hand-out, run long by the server's clock,
	// once every child has reported a hand-out past its end (so that none
	// of the run's is still to come).
	deadline := time.Now().Add(run + run/2 + 30*time.Second)
	var hs []time.Time
	for {
		hs = handouts()
		last := map[int]time.Time{}
		for _, l := range lc.snapshot() {
			if l.kind == "s" {
				udt, _ := strconv.ParseInt(udts[l.id], 10, 64)
				last[l.child] = time.UnixMilli(udt).Add(l.age)
			}
		}
		done := len(last) == 3
		for _, at := range last {
			done = done && at.Sub(hs[0]) >= run
		}
		if done {
			break
		}
		require.True(t, time.Now().Before(deadline), "the run did not last %v", run)
		time.Sleep(50 * time.Millisecond)
	}
	from, to := hs[0], hs[0].Add(run)
	in := 0
	for _, h := range hs {
		if h.Before(to) {
			in++
		}
	}
	rate := float64(in) / run.Seconds()
	handoutPeak := maxInWindow(hs, time.Second)
	// Handler starts by the local clock, for the figure.
	var ts []time.Time
	perChild := map[int]int{}
	var forfeit float64 // tokens the children's lags may have cost
	var worst time.Duration
	for _, l := range lc.snapshot() {
		switch l.kind {
		case "s":
			ts = append(ts, l.at)
			perChild[l.child]++
		case "l":
			if lagFrom := l.at.Add(-l.age); l.at.After(from) && lagFrom.Before(to) {
				forfeit += max(0, l.age.Seconds()*perSec-burst)
				worst = max(worst, l.age)
			}
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	peak := maxInWindow(ts, time.Second)
	t.Logf("limits figure: rate 100/s (burst 3) over %v by 3 processes: %.1f/s hand-outs by the server's clock; busiest 1 s window %d hand-outs by the server's clock, "+
		"%d handler starts by the local clock; per process %v; children's scheduling lags up to %v, at most %.0f tokens forfeit",
		run, rate, handoutPeak, peak, perChild, worst.Round(time.Millisecond), forfeit)
	assert.LessOrEqual(t, handoutPeak, 105, "no window of 1 s above 105 hand-outs")
	// (+2: the hand-outs' times are the server's milliseconds, rounded.)
	assert.LessOrEqual(t, in, int(run.Seconds()*perSec)+burst+2, "no more than the rate and the burst over the run")
	assert.GreaterOrEqual(t, float64(in)+forfeit, 0.95*run.Seconds()*perSec,
		"at least 95/s, less what the children's lags forfeit (%.0f tokens)", forfeit)
	// Handler starts lag their hand-outs by a scheduling delay of the
	// child's, which on a loaded machine bunches a few: a looser bound.
	assert.LessOrEqual(t, peak, 110, "no window of 1 s above 110 handler starts")
	assert.Len(t, perChild, 3, "every process took part")
}

// TestLimitsConcurrencyAcrossProcesses: a concurrency limit of 10 across
// 3 worker processes of 8 handler threads each, handlers of 50-200 ms:
// never more than 10 handlings at once (from the handling history); then
// one process is SIGKILLed while it holds slots, and they come back within
// its lock time: its messages are handled again by the others.
func TestLimitsConcurrencyAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	const lockTime = 2 * time.Second // the children's WorkerConfig.LockTime
	require.NoError(t, c.Inspector().SetLimits(ctx, q, Limits{Concurrency: 10}))
	const total = 600
	reqs := make([]EnqueueRequest, total)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("m%d", i)}}
	}
	_, err := c.EnqueueMany(ctx, q, reqs...)
	require.NoError(t, err)
	lc := startLimitsChildren(t, s, q, "concurrency", 3)

	// Kill child 0 once it runs handlers and the others have run a while.
	queuetest.WaitFor(t, "a second of handlings", func() bool { return lc.count("e") >= 60 })
	var killedIDs []string
	var killedAt time.Time
	queuetest.WaitFor(t, "child 0 to hold messages", func() bool {
		open := map[string]bool{}
		for _, l := range lc.snapshot() {
			if l.child == 0 {
				open[l.id] = l.kind == "s"
			}
		}
		killedIDs = killedIDs[:0]
		for id, o := range open {
			if o {
				killedIDs = append(killedIDs, id)
			}
		}
		if len(killedIDs) < 2 {
			return false
		}
		require.NoError(t, lc.cmds[0].Process.Kill()) // SIGKILL
		killedAt = time.Now()
		return true
	})
	_ = lc.cmds[0].Wait()

	// Every message handled: the killed ones by the others.
	queuetest.WaitFor(t, "every message handled", func() bool {
		done := map[string]bool{}
		for _, l := range lc.snapshot() {
			if l.kind == "e" {
				done[l.id] = true
			}
		}
		return len(done) == total
	})

	// The handling history: intervals from start to end (to the kill for
	// the killed child's open handlings).
	lines := lc.snapshot()
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	open := map[string]time.Time{}
	key := func(l limitsLine) string { return strconv.Itoa(l.child) + "/" + l.id }
	for _, l := range lines {
		if l.kind == "s" {
			open[key(l)] = l.at
			evs = append(evs, ev{l.at, +1})
		} else if _, ok := open[key(l)]; ok {
			delete(open, key(l))
			evs = append(evs, ev{l.at, -1})
		}
	}
	for k := range open {
		if strings.HasPrefix(k, "0/") {
			evs = append(evs, ev{killedAt, -1})
		}
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d // ends before starts at the same instant
	})
	running, peak := 0, 0
	for _, e := range evs {
		running += e.d
		peak = max(peak, running)
	}
	// When the killed child's messages were handed out again.
	var back time.Duration
	for _, id := range killedIDs {
		for _, l := range lines {
			if l.kind == "s" && l.child != 0 && l.id == id {
				back = max(back, l.at.Sub(killedAt))
				break
			}
		}
	}
	t.Logf("limits figure: concurrency 10 across 3 processes (8 threads each, handlers 50-200 ms): at most %d running; "+
		"a SIGKILLed process's %d slots back within %v (lock time %v)", peak, len(killedIDs), back.Round(time.Millisecond), lockTime)
	assert.LessOrEqual(t, peak, 10, "never more than 10 running")
	assert.GreaterOrEqual(t, peak, 8, "the limit, not the threads, bounds the running")
	assert.Less(t, back, lockTime+time.Second, "the killed process's slots back within its lock time (and a poll)")
	st, err := c.Inspector().Limits(ctx, q)
	require.NoError(t, err)
	assert.EqualValues(t, 0, st.SlotsHeld, "every slot freed in the end")
}

// TestLimitsIdleCost: 10,000 messages waiting on a rate limit (the
// queue's, then a key's) cost an idle worker at most 10 Redis commands a
// second.
func TestLimitsIdleCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits Limits
		key    string
	}{
		{"queue rate", Limits{Rate: Rate{N: 1, Per: time.Hour}}, ""},
		{"key rate", Limits{KeyRate: Rate{N: 1, Per: time.Hour}}, "customer-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := queuetest.RealServer(t)
			// The worker's client counts the commands it sends (a script
			// call is one; a pipeline counts each of its commands).
			rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr})
			t.Cleanup(func() { rdb.Close() })
			var sent atomic.Int64
			rdb.AddHook(countingHook{cmds: &sent})
			c, err := New(rdb, &Config{Logger: testLogger(t)})
			require.NoError(t, err)
			q := queuetest.QueueName(t)
			ctx := context.Background()
			require.NoError(t, c.Inspector().SetLimits(ctx, q, tc.limits))
			reqs := make([]EnqueueRequest, 10_000)
			for i := range reqs {
				reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("m%d", i), LimitKey: tc.key}}
			}
			_, err = c.EnqueueMany(ctx, q, reqs...)
			require.NoError(t, err)
			handled := make(chan string, 10_000)
			w, err := c.StartWorker(ctx, q, &WorkerConfig{Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
				handled <- m.ID
				return nil
			})})
			require.NoError(t, err)
			t.Cleanup(func() { _ = w.Stop(context.Background()) })
			<-handled // the one token
			// Settle: the worker has met the limit and sleeps.
			queuetest.WaitFor(t, "the worker to wait on the limit", func() bool {
				st := w.Stats()
				return st.Counts.Skips.RateLimited > 0 &&
					(tc.key == "" || s.RDB.LLen(ctx, s.Key(q, keys.MidsReady)).Val() == 0)
			})
			time.Sleep(time.Second)
			// In-script commands too, as Redis counts them: its work.
			inRedis := func() int64 {
				info, err := s.RDB.Info(ctx, "stats").Result()
				require.NoError(t, err)
				for _, l := range strings.Split(info, "\r\n") {
					if v, ok := strings.CutPrefix(l, "total_commands_processed:"); ok {
						n, _ := strconv.ParseInt(v, 10, 64)
						return n
					}
				}
				t.Fatal("no total_commands_processed")
				return 0
			}
			const over = 5 * time.Second
			before, beforeIn := sent.Load(), inRedis()
			time.Sleep(over) // the measure's span, not a synchronisation
			perSec := float64(sent.Load()-before) / over.Seconds()
			inSec := float64(inRedis()-beforeIn-1) / over.Seconds()
			t.Logf("limits figure: idle cost, 10,000 messages waiting on a %s: %.1f Redis commands/s sent by one worker (%.1f/s counted by Redis, in-script commands included)",
				tc.name, perSec, inSec)
			assert.LessOrEqual(t, perSec, 10.0)
			assert.Empty(t, handled, "nothing more handed out: the limit holds (%d were)", len(handled))
		})
	}
}

// countingHook counts what a client sends: in cmds every command (each
// of a pipeline's), in trips every round trip (a command, or a pipeline
// however many commands it holds); either may be nil.
type countingHook struct{ cmds, trips *atomic.Int64 }

func (h countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(1)
		return next(ctx, cmd)
	}
}

func (h countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (h countingHook) add(cmds int64) {
	if h.cmds != nil {
		h.cmds.Add(cmds)
	}
	if h.trips != nil {
		h.trips.Add(1)
	}
}

// TestHelperLimitsWorker is the child of the tests above.
func TestHelperLimitsWorker(t *testing.T) {
	mode := os.Getenv("MQ_HELPER_LIMITS")
	if mode == "" {
		t.Skip("run by TestLimits*AcrossProcesses")
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("MQ_HELPER_REDIS")})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	var mu sync.Mutex
	say := func(kind string, m *Message) {
		mu.Lock()
		fmt.Printf("%s %s %d %d\n", kind, m.ID, time.Now().UnixNano(), m.Age)
		mu.Unlock()
	}
	if mode == "rate" {
		// The child's own scheduling lags: a tick of a 5 ms ticker that
		// comes 10 ms late or more ("l x <unix ns> <lag ns>").
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			last := time.Now()
			for range tick.C {
				now := time.Now()
				if lag := now.Sub(last); lag >= 10*time.Millisecond {
					mu.Lock()
					fmt.Printf("l x %d %d\n", now.UnixNano(), lag)
					mu.Unlock()
				}
				last = now
			}
		}()
	}
	cfg := &WorkerConfig{HandlerThreads: 4}
	var handler HandlerFunc = func(ctx context.Context, m *Message) error {
		say("s", m)
		say("e", m)
		return nil
	}
	if mode == "concurrency" {
		cfg = &WorkerConfig{HandlerThreads: 8, LockTime: 2 * time.Second}
		handler = func(ctx context.Context, m *Message) error {
			say("s", m)
			time.Sleep(time.Duration(50+rand.IntN(151)) * time.Millisecond) // the handling's work
			say("e", m)
			return nil
		}
	}
	cfg.Handler = handler
	w, err := c.StartWorker(t.Context(), os.Getenv("MQ_HELPER_QUEUE"), cfg)
	require.NoError(t, err)
	defer w.Close()
	select {} // until killed
}

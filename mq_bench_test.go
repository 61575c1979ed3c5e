package mq

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/redistest"
)

// The benchmarks run on a throwaway real redis-server: miniredis would
// measure gopher-lua, not Redis. Whole-system figures against other queues
// come from the harness under bench/.

func benchClient(b *testing.B) *Client {
	b.Helper()
	srv := redistest.Start(b)
	c, err := New(srv.Client(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

var benchPayload = make([]byte, 100)

func BenchmarkEnqueue(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Enqueue(ctx, "bench", Raw(benchPayload), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueMany enqueues in calls of 1000 messages: one b.N is one
// message.
func BenchmarkEnqueueMany(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	reqs := make([]EnqueueRequest, 1000)
	for i := range reqs {
		reqs[i].Message = Raw(benchPayload)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(reqs) {
		if _, err := c.EnqueueMany(ctx, "bench", reqs[:min(len(reqs), b.N-i)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkWorker measures end-to-end handling of a pre-filled queue with a
// no-op handler: one b.N is one message.
func BenchmarkWorker(b *testing.B) {
	for _, handlers := range []int{1, 8} {
		b.Run(fmt.Sprintf("handlers=%d", handlers), func(b *testing.B) {
			c := benchClient(b)
			n := b.N
			benchFill(b, c, "bench", n)
			var handled atomic.Int64
			done := make(chan struct{})
			b.ReportAllocs()
			b.ResetTimer()
			w, err := c.StartWorker(b.Context(), "bench", &WorkerConfig{
				HandlerThreads: handlers,
				Handler: HandlerFunc(func(context.Context, *Message) error {
					if handled.Add(1) == int64(n) {
						close(done)
					}
					return nil
				}),
			})
			if err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDelayedStart measures how late an idle worker starts a delayed
// message: each message is enqueued with a 20 ms delay to a worker that
// would otherwise sleep an hour at the end of the queue; late-ms is the
// mean of the handling's age less the delay, by the Redis server's clock
// (whole milliseconds), and max-late-ms the worst.
func BenchmarkDelayedStart(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	const delay = 20 * time.Millisecond
	ages := make(chan time.Duration, 1)
	w, err := c.StartWorker(ctx, "bench-delayed", &WorkerConfig{
		EndOfQueueBackoff: Constant(time.Hour),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			ages <- m.Age
			return nil
		}),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var total, worst time.Duration
	for b.Loop() {
		if _, err := c.Enqueue(ctx, "bench-delayed", Raw(benchPayload), &EnqueueOptions{InitialBackoff: delay}); err != nil {
			b.Fatal(err)
		}
		late := <-ages - delay
		total += late
		worst = max(worst, late)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "late-ms")
	b.ReportMetric(float64(worst.Milliseconds()), "max-late-ms")
}

// BenchmarkHandoff measures end-to-end handling of a pre-filled queue
// with a no-op handler (plain), with a handler that enqueues one message
// to another queue itself (enqueue: not exactly once), and with one
// follow-up per message (followup: Then, docs/protocol.md §22), counted
// until every follow-up is in its queue: one b.N is one message.
func BenchmarkHandoff(b *testing.B) {
	for _, mode := range []string{"plain", "enqueue", "followup"} {
		b.Run(mode, func(b *testing.B) {
			c := benchClient(b)
			ctx := context.Background()
			n := b.N
			benchFill(b, c, "bench", n)
			var handled atomic.Int64
			done := make(chan struct{})
			b.ReportAllocs()
			cpu0, calls0, evals0 := redisUsage(b, c)
			own0 := processCPU(b)
			b.ResetTimer()
			w, err := c.StartWorker(b.Context(), "bench", &WorkerConfig{
				HandlerThreads: 8,
				Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
					if handled.Add(1) == int64(n) {
						defer close(done)
					}
					switch mode {
					case "enqueue":
						_, err := c.Enqueue(ctx, "bench-next", Raw(benchPayload), nil)
						return err
					case "followup":
						return Then(FollowUp{Queue: "bench-next", Message: Raw(benchPayload)})
					}
					return nil
				}),
			})
			if err != nil {
				b.Fatal(err)
			}
			<-done
			if mode != "plain" {
				for {
					counts, err := c.Inspector().QueueCounts(ctx, "bench-next")
					if err != nil {
						b.Fatal(err)
					}
					if counts.Total-counts.Done >= int64(n) {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			b.StopTimer()
			cpu1, calls1, evals1 := redisUsage(b, c)
			own1 := processCPU(b)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric((cpu1-cpu0)*1e6/float64(n), "redis-µs/msg")
			b.ReportMetric(float64(calls1-calls0)/float64(n), "cmds/msg")
			b.ReportMetric(float64(n)/float64(max(1, evals1-evals0)), "msgs/script")
			b.ReportMetric((own1-own0)*1e6/float64(n), "client-µs/msg")
		})
	}
}

// BenchmarkHandoffPhases measures what BenchmarkHandoff's followup/plain
// ratio measures, in one run: a pre-filled queue in phases of
// handoffPhase messages, plain and followup in turn (a message's first
// byte says which), handled by one worker of 8 handler threads, each
// phase timed from its first handling to the next phase's. Phases of
// tens of milliseconds alternate, so that what else a shared machine
// runs weighs on both modes alike, where runs of seconds each (as
// BenchmarkHandoff's, compared pair by pair) catch it in one and not the
// other. The first and last two phases are not counted (the worker's
// start; the last follow-ups in flight). Reports each mode's msgs/s, the
// ratio (followup-x, followup's msgs/s over plain's) and each mode's
// Redis CPU a message (INFO, read at each phase's start). One b.N is one
// message; run it with -benchtime of at least 40 phases (e.g. 100000x).
// MQ_BENCH_TARGET_FILL=n fills the follow-ups' queue with n messages
// first, as a backlog leaves it.
func BenchmarkHandoffPhases(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	phases := max(8, b.N/handoffPhase)
	n := phases * handoffPhase
	followup := append([]byte{1}, benchPayload[1:]...)
	for i := 0; i < n; i += 1000 {
		reqs := make([]EnqueueRequest, 1000)
		for j := range reqs {
			reqs[j].Message = Raw(benchPayload)
			if (i+j)/handoffPhase%2 == 1 {
				reqs[j].Message = Raw(followup)
			}
		}
		if _, err := c.EnqueueMany(ctx, "bench", reqs...); err != nil {
			b.Fatal(err)
		}
	}
	if fill, _ := strconv.Atoi(os.Getenv("MQ_BENCH_TARGET_FILL")); fill > 0 {
		benchFill(b, c, "bench-next", fill)
	}
	type mark struct {
		at  time.Time
		cpu float64
	}
	marks := make([]mark, phases+1)
	sampled := make(chan int, phases+1)
	sampler := make(chan struct{})
	go func() { // (INFO off the handlers' path)
		defer close(sampler)
		for k := range sampled {
			info, err := c.rdb.Info(ctx, "cpu").Result()
			if err != nil {
				b.Error(err)
				continue
			}
			marks[k].cpu, _, _ = parseRedisUsage(info)
		}
	}()
	var handled atomic.Int64
	done := make(chan struct{})
	b.ResetTimer()
	w, err := c.StartWorker(b.Context(), "bench", &WorkerConfig{
		HandlerThreads: 8,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			h := handled.Add(1)
			if h%handoffPhase == 1 {
				k := int(h / handoffPhase)
				marks[k].at = time.Now()
				sampled <- k
			}
			if h == int64(n) {
				defer close(done)
			}
			if m.Data[0] == 1 {
				return Then(FollowUp{Queue: "bench-next", Message: Raw(benchPayload)})
			}
			return nil
		}),
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	close(sampled)
	<-sampler
	var took [2]time.Duration
	var cpu [2]float64
	var count [2]int
	for k := 1; k < phases-2; k++ {
		mode := k % 2
		took[mode] += marks[k+1].at.Sub(marks[k].at)
		cpu[mode] += marks[k+1].cpu - marks[k].cpu
		count[mode] += handoffPhase
	}
	plain := float64(count[0]) / took[0].Seconds()
	follow := float64(count[1]) / took[1].Seconds()
	b.ReportMetric(plain, "plain-msgs/s")
	b.ReportMetric(follow, "followup-msgs/s")
	b.ReportMetric(follow/plain, "followup-x")
	b.ReportMetric(cpu[0]*1e6/float64(count[0]), "plain-redis-µs/msg")
	b.ReportMetric(cpu[1]*1e6/float64(count[1]), "followup-redis-µs/msg")
}

// handoffPhase is the number of messages of one phase of
// BenchmarkHandoffPhases.
const handoffPhase = 2000

// redisUsage answers the CPU seconds the benchmark's Redis used so far
// (used_cpu_sys + used_cpu_user), the commands it ran, scripts' own
// calls included, and the script calls (EVALSHA) among them (INFO
// commandstats). Between two readings they include
// what the measure's own calls cost (BenchmarkHandoff's waits for the
// follow-ups read the counts, a script call each).
func redisUsage(b *testing.B, c *Client) (cpu float64, calls, evals int64) {
	b.Helper()
	info, err := c.rdb.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	return parseRedisUsage(info)
}

// parseRedisUsage reads redisUsage's figures from INFO's answer.
func parseRedisUsage(info string) (cpu float64, calls, evals int64) {
	for _, line := range strings.Split(info, "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		switch {
		case !ok:
		case name == "used_cpu_sys" || name == "used_cpu_user":
			v, _ := strconv.ParseFloat(value, 64)
			cpu += v
		case strings.HasPrefix(name, "cmdstat_") && name != "cmdstat_info":
			f, _, _ := strings.Cut(value, ",")
			v, _ := strconv.ParseInt(strings.TrimPrefix(f, "calls="), 10, 64)
			calls += v
			if name == "cmdstat_evalsha" {
				evals = v
			}
		}
	}
	return cpu, calls, evals
}

// benchFill enqueues n messages of benchPayload to queue, 1,000 a call.
func benchFill(b *testing.B, c *Client, queue string, n int) {
	b.Helper()
	for i := 0; i < n; i += 1000 {
		reqs := make([]EnqueueRequest, min(1000, n-i))
		for j := range reqs {
			reqs[j].Message = Raw(benchPayload)
		}
		if _, err := c.EnqueueMany(context.Background(), queue, reqs...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueConcurrent has G goroutines (8 and 64, rounded to a
// multiple of GOMAXPROCS) call Enqueue in a loop, as request handlers do:
// their calls are coalesced (coalesce.go). One b.N is one message; it
// reports the messages a script call carried (msgs/script, from INFO
// commandstats) and the CPU a message cost this process (cli-us/msg) and
// Redis (redis-us/msg), which a loaded machine disturbs less than msgs/s.
// Profile it with -cpuprofile.
func BenchmarkEnqueueConcurrent(b *testing.B) {
	for _, g := range []int{8, 64} {
		b.Run(fmt.Sprintf("G=%d", g), func(b *testing.B) {
			c := benchClient(b)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
			rcpu0, _, evals0 := redisUsage(b, c)
			ccpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Enqueue(ctx, "bench", Raw(benchPayload), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			ccpu1 := processCPU(b)
			rcpu1, _, evals1 := redisUsage(b, c)
			b.ReportMetric((ccpu1-ccpu0)*1e6/float64(b.N), "cli-us/msg")
			b.ReportMetric((rcpu1-rcpu0)*1e6/float64(b.N), "redis-us/msg")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(1, evals1-evals0)), "msgs/script")
		})
	}
}

package mq

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// BenchmarkWorkerResults is BenchmarkWorker with 8 handlers, without and
// with a 100-byte result given with each success, on a queue that never
// used results and one that does: one b.N is one message. Besides the
// rate it reports the Redis server's CPU time per message (redis-us/msg,
// from INFO cpu), which a busy machine disturbs less than the rate.
func BenchmarkWorkerResults(b *testing.B) {
	for _, withResult := range []bool{false, true} {
		name := "plain"
		if withResult {
			name = "result"
		}
		b.Run(name, func(b *testing.B) { benchWorkerResults(b, withResult) })
	}
}

func benchWorkerResults(b *testing.B, withResult bool) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	c, err := New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	benchFill(b, c, "bench", n)
	var handled atomic.Int64
	done := make(chan struct{})
	b.ReportAllocs()
	cpu0 := redisCPU(b, rdb)
	b.ResetTimer()
	w, err := c.StartWorker(b.Context(), "bench", &WorkerConfig{
		HandlerThreads: 8,
		Handler: HandlerFunc(func(_ context.Context, m *Message) error {
			if withResult {
				if err := m.SetResult(Raw(benchPayload)); err != nil {
					return err
				}
			}
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
	b.ReportMetric((redisCPU(b, rdb)-cpu0)*1e6/float64(n), "redis-us/msg")
}

// redisCPU answers the Redis server's CPU time so far, in seconds.
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

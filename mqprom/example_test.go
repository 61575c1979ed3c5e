package mqprom_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/mqprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Example serves a queue's counts and a worker's metrics on /metrics. It
// runs on an embedded miniredis; a service passes its own Redis client.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	client, err := mq.New(rdb, &mq.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	reg := prometheus.NewRegistry()
	reg.MustRegister(mqprom.NewQueueCollector(client, nil)) // every queue, read from Redis
	workers := mqprom.NewWorkerCollector(nil)               // this process's workers
	reg.MustRegister(workers)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	for _, to := range []string{"ada", "grace", "edsger"} {
		if _, err := client.Enqueue(ctx, "emails", to, nil); err != nil {
			panic(err)
		}
	}
	if _, err := client.Enqueue(ctx, "emails", "later", &mq.EnqueueOptions{InitialBackoff: time.Hour}); err != nil {
		panic(err)
	}
	scrape(srv.URL, "mq_queue_messages{")

	handled := make(chan string)
	w, err := client.StartWorker(ctx, "emails", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			handled <- m.ID
			return nil
		}),
		Observer: workers, // feeds the histograms
	})
	if err != nil {
		panic(err)
	}
	workers.Add(w) // exports its counters
	for range 3 {
		<-handled
	}
	if err := w.Stop(ctx); err != nil {
		panic(err)
	}
	scrape(srv.URL, `mq_worker_handled_total{outcome="succeeded"`, "mq_worker_handling_seconds_count", "mq_worker_queueing_seconds_count")
	// Output:
	// mq_queue_messages{queue="emails",state="backoff"} 1
	// mq_queue_messages{queue="emails",state="done"} 0
	// mq_queue_messages{queue="emails",state="locked"} 0
	// mq_queue_messages{queue="emails",state="queued"} 3
	// mq_worker_handled_total{outcome="succeeded",queue="emails"} 3
	// mq_worker_handling_seconds_count{outcome="succeeded",queue="emails"} 3
	// mq_worker_queueing_seconds_count{queue="emails"} 3
}

// scrape prints the lines of url/metrics that start with one of prefixes.
func scrape(url string, prefixes ...string) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		for _, p := range prefixes {
			if strings.HasPrefix(lines.Text(), p) {
				fmt.Println(lines.Text())
			}
		}
	}
}

// Command service is a whole service on one HTTP server: workers sending
// emails from a queue, the dashboard at /mq/, Prometheus metrics at
// /metrics, and an endpoint that enqueues, POST /emails.
//
//	go run ./examples/service            # then open http://localhost:8080/mq/
//	curl -d '{"to":"ada@example.com","body":"hello"}' localhost:8080/emails
//	curl localhost:8080/metrics
//
// With REDIS_URL unset it runs on an embedded Redis (miniredis), so it needs
// nothing installed; with REDIS_URL=redis://host:port/db it uses that Redis.
// ADDR sets where it listens (default localhost:8080). Unless DEMO=0 it
// enqueues an email a second, one in ten to an address that bounces, so
// that the dashboard has something to show: counts, handlings per minute
// and dead letters.
//
// It is a module of its own (it needs the dashboard and mqprom modules);
// the repository's go.work builds it from the working tree.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/dashboard"
	"github.com/gocarmine/mq/mqprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// queue is the queue the service's workers handle.
const queue = "emails"

// Email is the message: who to write to, and what.
type Email struct {
	To   string `json:"to" msgpack:"to"`
	Body string `json:"body" msgpack:"body"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "localhost:8080"
	}
	cfg := config{
		Addr:   addr,
		Demo:   os.Getenv("DEMO") != "0",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Ready: func(url string) {
			fmt.Printf("listening on %s: the dashboard at %s/mq/, metrics at %s/metrics\n", url, url, url)
		},
	}
	if err := run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

// config is what run needs from main (or from a test).
type config struct {
	// Addr is where the HTTP server listens; "127.0.0.1:0" picks a port.
	Addr string
	// Demo enqueues an email a second while the service runs.
	Demo   bool
	Logger *slog.Logger
	// Ready, if set, is called with the server's base URL once it
	// listens.
	Ready func(url string)
}

// run runs the service until ctx is done, then stops the HTTP server and
// the worker, letting handlings under way finish.
func run(ctx context.Context, cfg config) error {
	rdb, closeRedis, err := connect(cfg.Logger)
	if err != nil {
		return err
	}
	defer closeRedis()

	client, err := mq.New(rdb, &mq.Config{Logger: cfg.Logger})
	if err != nil {
		return err
	}

	// Metrics: the queues' counts, read from Redis at each scrape, and
	// this process's workers, fed by every handling.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(mqprom.NewQueueCollector(client, nil))
	workerMetrics := mqprom.NewWorkerCollector(nil)
	reg.MustRegister(workerMetrics)

	// The workers: one Worker, four handlers, in this process; run more
	// processes for more.
	worker, err := client.StartWorker(ctx, queue, &mq.WorkerConfig{
		HandlerThreads: 4,
		Handler:        &sender{log: cfg.Logger},
		Observer:       workerMetrics,
	})
	if err != nil {
		return err
	}
	workerMetrics.Add(worker)

	mux := http.NewServeMux()
	// The dashboard has no authentication of its own: a real service puts
	// its own in front of it. This one listens on localhost by default.
	mux.Handle("/mq/", http.StripPrefix("/mq", dashboard.New(client, dashboard.Options{
		AllowActions: true,
		Title:        "example service",
		Logger:       cfg.Logger,
	})))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("POST /emails", enqueueHandler(client))
	mux.Handle("GET /{$}", http.RedirectHandler("mq/", http.StatusFound))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return errors.Join(err, stopWorker(worker))
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if cfg.Ready != nil {
		cfg.Ready("http://" + ln.Addr().String())
	}
	if cfg.Demo {
		go produce(ctx, client, cfg.Logger)
	}

	select {
	case <-ctx.Done():
	case err := <-served: // the listener failed
		return errors.Join(err, stopWorker(worker))
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errHTTP := srv.Shutdown(shutCtx)
	return errors.Join(errHTTP, stopWorker(worker))
}

// stopWorker stops the worker, waiting up to 10 s for its handlings.
func stopWorker(w *mq.Worker) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Stop(ctx)
}

// connect answers a client of REDIS_URL, or of an embedded miniredis when
// it is unset, and what closes it.
func connect(log *slog.Logger) (*redis.Client, func(), error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opts)
		log.Info("redis", "addr", opts.Addr)
		return rdb, func() { _ = rdb.Close() }, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	log.Info("redis: embedded miniredis (set REDIS_URL to use a real Redis)")
	return rdb, func() { _ = rdb.Close(); m.Close() }, nil
}

// sender handles the queue's emails; a real one holds an SMTP or API
// client.
type sender struct {
	log *slog.Logger
}

// errBounced is a permanent failure: the address does not exist.
var errBounced = errors.New("550 mailbox unavailable")

// Handle implements mq.Handler.
func (s *sender) Handle(ctx context.Context, m *mq.Message) error {
	var e Email
	if err := m.Decode(&e); err != nil {
		return mq.Final(err) // it will not decode better next time
	}
	if strings.HasPrefix(e.To, "bounce") {
		return mq.Final(fmt.Errorf("send to %s: %w", e.To, errBounced)) // a dead letter at once
	}
	s.log.DebugContext(ctx, "sent", "id", m.ID, "to", e.To)
	return nil
}

// enqueueHandler answers POST /emails: a JSON Email, enqueued; 202 with
// the message id, 400 for a bad body.
func enqueueHandler(client *mq.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Email
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.To == "" {
			http.Error(w, `a JSON body {"to": ..., "body": ...} with "to" set`, http.StatusBadRequest)
			return
		}
		res, err := client.Enqueue(r.Context(), queue, e, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": res.MessageID})
	})
}

// produce enqueues an email a second until ctx is done, one in ten to an
// address that bounces.
func produce(ctx context.Context, client *mq.Client, log *slog.Logger) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		to := fmt.Sprintf("user%d@example.com", i)
		if i%10 == 0 {
			to = fmt.Sprintf("bounce%d@example.com", i)
		}
		if _, err := client.Enqueue(ctx, queue, Email{To: to, Body: "welcome"}, nil); err != nil && ctx.Err() == nil {
			log.Warn("demo enqueue", "error", err)
		}
	}
}

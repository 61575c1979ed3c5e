package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
)

// TestService runs the service on an embedded Redis, as `go run` does with
// REDIS_URL unset, and uses each part on its one server: POST /emails
// enqueues, the worker handles (a bounce becomes a dead letter), /metrics
// and the dashboard's API say so, the dashboard's page loads; then the
// service stops when its context ends.
func TestService(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{
			Addr:   "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(url string) { ready <- url },
		})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("the service stopped at its start: %v", err)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	post := func(body string) int {
		t.Helper()
		resp, err := http.Post(base+"/emails", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	for _, to := range []string{"ada@example.com", "bob@example.com", "bounce@example.com"} {
		if st := post(`{"to":"` + to + `","body":"hello"}`); st != http.StatusAccepted {
			t.Fatalf("enqueue to %s: %d", to, st)
		}
	}
	if st := post(`{"body":"to nobody"}`); st != http.StatusBadRequest {
		t.Errorf("an email without an address: %d, want 400", st)
	}

	// The worker's handlings, in its metrics, and the queue's dead letter,
	// read from Redis by the same scrape.
	wantMetrics := []string{
		`mq_worker_handled_total{outcome="succeeded",queue="emails"} 2`,
		`mq_worker_handled_total{outcome="dead",queue="emails"} 1`,
		`mq_queue_dead_letters{queue="emails"} 1`,
	}
	var metrics string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the last scrape:\n%s", grepMQ(metrics))
		}
	})
	queuetest.WaitFor(t, "the handlings in /metrics", func() bool {
		_, metrics = get("/metrics")
		for _, m := range wantMetrics {
			if !strings.Contains(metrics, m) {
				return false
			}
		}
		return true
	})

	// The dashboard, on the same server: its page, its counts and its
	// per-minute history of the same handlings.
	if st, page := get("/mq/"); st != http.StatusOK || !strings.Contains(page, "static/app.js") {
		t.Errorf("the dashboard's page: %d\n%s", st, page)
	}
	st, body := get("/mq/api/history?queue=emails")
	if st != http.StatusOK {
		t.Fatalf("the dashboard's history: %d %s", st, body)
	}
	var minutes struct {
		Minutes []struct{ Processed, Failed int }
	}
	if err := json.Unmarshal([]byte(body), &minutes); err != nil {
		t.Fatal(err)
	}
	var processed, failed int
	for _, m := range minutes.Minutes {
		processed += m.Processed
		failed += m.Failed
	}
	if processed != 3 || failed != 1 {
		t.Errorf("the dashboard shows %d processed, %d failed; want 3 and 1", processed, failed)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("the service's stop: %v", err)
	}
}

// grepMQ answers the lines of a scrape about mq.
func grepMQ(scrape string) string {
	var out []string
	for l := range strings.Lines(scrape) {
		if strings.HasPrefix(l, "mq_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

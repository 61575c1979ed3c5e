package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestHelpLists: every command is in the help, workers and serve too.
func TestHelpLists(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	help := f.env.ok(t, "", "--help").stdout
	for _, word := range []string{"queues", "show", "message", "enqueue", "delete", "cancel", "pause", "resume", "clear", "dead", "workers", "history", "serve"} {
		if !strings.Contains(help, "\n  "+word+" ") {
			t.Errorf("help does not list %s:\n%s", word, help)
		}
	}
}

// waitUntil polls cond until it holds, failing the test after a generous
// deadline: it waits on state, not on time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWorkers: workers lists a running worker of the queue, from its
// heartbeat in Redis, with what it tells of itself, and not a stopped one.
func TestWorkers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	idle := mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })
	gone, err := f.client.StartWorker(ctx, "emails", &mq.WorkerConfig{Handler: idle})
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := f.client.StartWorker(ctx, "emails", &mq.WorkerConfig{Handler: idle, HandlerThreads: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	var views []workerView
	waitUntil(t, "the running worker's heartbeat", func() bool {
		decode(t, f.env.ok(t, "", "workers", "emails", "--json"), &views)
		return len(views) > 0
	})
	host, _ := os.Hostname()
	if len(views) != 1 {
		t.Fatalf("workers %+v, want only %s (not the stopped %s)", views, w.ID(), gone.ID())
	}
	v := views[0]
	if v.ID != w.ID() || v.Queue != "emails" || v.Host != host || v.PID != os.Getpid() || v.Version != mq.Version ||
		v.HandlerThreads != 3 || v.HandlersBusy != 0 || v.WorkerThreads != 1 || v.Started.IsZero() ||
		v.LastBeat.Before(v.Started) || !v.Expires.After(v.LastBeat) {
		t.Errorf("worker %+v, want id %s, host %s, pid %d, version %s, 3 idle handlers", v, w.ID(), host, os.Getpid(), mq.Version)
	}
	var raw []map[string]any
	decode(t, f.env.ok(t, "", "workers", "emails", "--json"), &raw)
	for _, k := range []string{"id", "queue", "host", "pid", "version", "started", "last_poll", "last_beat", "expires", "handlers_busy", "handler_threads", "worker_threads"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("--json has no %q: %v", k, raw[0])
		}
	}

	table := f.env.ok(t, "", "workers", "emails").stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^ID +HOST +PID +VERSION +STARTED +LAST POLL +LAST BEAT +BUSY$`).MatchString(lines[0]) ||
		!strings.HasPrefix(lines[1], w.ID()+" ") || !strings.HasSuffix(lines[1], " 0/3") ||
		!strings.Contains(lines[1], " "+host+" ") {
		t.Errorf("the table:\n%s", table)
	}

	// A stopped worker leaves the list at once.
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if out := f.env.ok(t, "", "workers", "emails").stdout; out != "no live workers of emails\n" {
		t.Errorf("after Stop: %q", out)
	}
	if out := f.env.ok(t, "", "workers").stdout; out != "no live workers on redis://"+f.srv.Addr+"/0\n" {
		t.Errorf("every queue's, after Stop: %q", out)
	}
	f.env.fails(t, exitUsage, "at most one QUEUE", "", "workers", "a", "b")
	f.env.fails(t, exitUsage, "queue name", "", "workers", "a*b")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "workers", "emials")
}

// TestWorkersAll: without a queue, mqctl workers lists the live workers
// of every queue, with a queue column, though neither queue holds a
// message.
func TestWorkersAll(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	idle := mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })
	ids := map[string]string{}
	for _, q := range []string{"emails", "sms"} {
		w, err := f.client.StartWorker(ctx, q, &mq.WorkerConfig{Handler: idle})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ids[q] = w.ID()
	}
	var views []workerView
	waitUntil(t, "both workers' heartbeats", func() bool {
		decode(t, f.env.ok(t, "", "workers", "--json"), &views)
		return len(views) == 2
	})
	if views[0].Queue != "emails" || views[0].ID != ids["emails"] || views[1].Queue != "sms" || views[1].ID != ids["sms"] {
		t.Errorf("workers --json: %+v, want emails's %s and sms's %s", views, ids["emails"], ids["sms"])
	}
	table := f.env.ok(t, "", "workers").stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^QUEUE +ID +HOST `).MatchString(lines[0]) ||
		!regexp.MustCompile(`^emails +`+ids["emails"]+" ").MatchString(lines[1]) ||
		!regexp.MustCompile(`^sms +`+ids["sms"]+" ").MatchString(lines[2]) {
		t.Errorf("the table:\n%s", table)
	}
}

// syncBuffer is a bytes.Buffer that one goroutine writes while another
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServe runs mqctl serve with args in-process on a free port, and
// answers the dashboard's URL and a function that interrupts it and answers
// its exit code.
func startServe(t *testing.T, e env, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), &stdout, &stderr, func(k string) string { return e[k] })
	}()
	url := regexp.MustCompile(`on (http://\S+) `)
	var m []string
	waitUntil(t, "serve to listen", func() bool {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d: %s%s", c, stdout.String(), stderr.String())
		default:
		}
		m = url.FindStringSubmatch(stdout.String())
		return m != nil
	})
	stopped := false
	stop := func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		return <-code
	}
	t.Cleanup(func() { stop() })
	return m[1], stop
}

func httpDo(t *testing.T, method, url, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
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

// TestServe: serve answers the dashboard's page and JSON API under
// --prefix, with the counts the queue has; it is read-only by default and
// acts with --allow-actions; it stops, exiting 0, when interrupted.
func TestServe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "emails", "a", "x")
	f.enqueue(t, "emails", "b", "y")

	base, stop := startServe(t, f.env, "--prefix", "/mq")
	if !strings.HasSuffix(base, "/mq/") {
		t.Fatalf("serving on %s, want under /mq/", base)
	}
	code, body := httpDo(t, "GET", base+"api/overview", "", nil)
	if code != http.StatusOK {
		t.Fatalf("overview: %d %s", code, body)
	}
	var ov struct {
		Actions bool `json:"actions"`
		Queues  []struct {
			Name   string `json:"name"`
			Counts struct {
				Queued int64 `json:"queued"`
				Total  int64 `json:"total"`
			} `json:"counts"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if ov.Actions || len(ov.Queues) != 1 || ov.Queues[0].Name != "emails" || ov.Queues[0].Counts.Queued != 2 || ov.Queues[0].Counts.Total != 2 {
		t.Errorf("overview %s", body)
	}
	if code, body := httpDo(t, "GET", base, "", nil); code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Errorf("the page: %d %.200s", code, body)
	}
	action := map[string]string{"Content-Type": "application/json", "X-MQ-Dashboard": "1"}
	if code, body := httpDo(t, "POST", base+"api/pause", `{"queue":"emails"}`, action); code != http.StatusForbidden {
		t.Errorf("pause, read-only: %d %s", code, body)
	}
	if c := stop(); c != exitOK {
		t.Errorf("serve exited %d when interrupted", c)
	}
	if _, err := http.Get(base + "api/overview"); err == nil {
		t.Error("still serving after the interrupt")
	}

	base, _ = startServe(t, f.env, "--allow-actions")
	if code, body := httpDo(t, "POST", base+"api/pause", `{"queue":"emails"}`, action); code != http.StatusOK {
		t.Errorf("pause, actions allowed: %d %s", code, body)
	}
	if n, err := f.client.Inspector().QueueCounts(context.Background(), "emails"); err != nil || !n.Paused {
		t.Errorf("after the pause: %+v %v", n, err)
	}

	f.env.fails(t, exitUsage, "contradict", "", "serve", "--allow-actions", "--read-only")
	f.env.fails(t, exitUsage, "--prefix", "", "serve", "--prefix", "mq")
}

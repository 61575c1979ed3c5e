package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
)

func serve(t *testing.T, c *mq.Client, opts Options) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	mux := http.NewServeMux()
	mux.Handle("/mq/", http.StripPrefix("/mq", New(c, opts)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func decodeJSON[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return v
}

func overviewOf(t *testing.T, srv *httptest.Server) overviewJSON {
	t.Helper()
	code, body := get(t, srv, "/mq/api/overview")
	if code != http.StatusOK {
		t.Fatalf("overview: %d %s", code, body)
	}
	return decodeJSON[overviewJSON](t, body)
}

func findQueue(t *testing.T, ov overviewJSON, name string) queueJSON {
	t.Helper()
	for _, q := range ov.Queues {
		if q.Name == name {
			return q
		}
	}
	t.Fatalf("queue %q not in the overview %+v", name, ov.Queues)
	return queueJSON{}
}

// TestOverview: the JSON API answers every queue's counts as they are in
// Redis, and a history whose last sample is the latest reading.
func TestOverview(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	fill(t, c, "emails")
	if _, err := c.Enqueue(context.Background(), "other", "x", nil); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})

	ov := overviewOf(t, srv)
	if ov.Actions {
		t.Error("actions are off by default")
	}
	if len(ov.Queues) != 2 || ov.Queues[0].Name != "emails" || ov.Queues[1].Name != "other" {
		t.Fatalf("queues: %+v", ov.Queues)
	}
	q := findQueue(t, ov, "emails")
	if q.Counts == nil || *q.Counts != want {
		t.Fatalf("counts %+v, want %+v", q.Counts, want)
	}
	if len(q.History) != 1 || q.History[0].Queued != want.Queued || q.History[0].Done != want.Done {
		t.Fatalf("history %+v", q.History)
	}

	// The counts follow the queue; within an interval the last sample is
	// replaced by the latest reading.
	if _, err := c.Inspector().DeleteMessage(context.Background(), "emails", "done-0"); err != nil {
		t.Fatal(err)
	}
	q = findQueue(t, overviewOf(t, srv), "emails")
	if q.Counts.Done != want.Done-1 || len(q.History) != 1 || q.History[0].Done != want.Done-1 {
		t.Fatalf("after a delete: %+v %+v", q.Counts, q.History)
	}
}

// TestHistory: one sample per interval, the last replaced by the latest
// reading, at most History of them, and queues forgotten past the bound.
func TestHistory(t *testing.T) {
	h := newHistory(3, time.Second)
	t0 := time.UnixMilli(1_000_000)
	h.record("q", t0, counts{Queued: 1})
	h.record("q", t0.Add(500*time.Millisecond), counts{Queued: 2})
	s := h.record("q", t0.Add(1100*time.Millisecond), counts{Queued: 3})
	if len(s) != 2 || s[0].Queued != 2 || s[1].Queued != 3 {
		t.Fatalf("samples %+v", s)
	}
	h.record("q", t0.Add(2200*time.Millisecond), counts{Queued: 4})
	s = h.record("q", t0.Add(3300*time.Millisecond), counts{Queued: 5})
	if len(s) != 3 || s[0].Queued != 3 || s[2].Queued != 5 {
		t.Fatalf("bounded samples %+v", s)
	}
	h.record("old", t0, counts{})
	h.record("new", t0.Add(time.Hour), counts{})
	h.keep([]string{"q"}, 2)
	if got := h.samples("old"); got != nil {
		t.Errorf("the stalest queue not live is forgotten first: %+v", got)
	}
	if h.samples("new") == nil || h.samples("q") == nil {
		t.Error("kept queues lost")
	}
}

// TestMessagesAPI: pages of messages, each with its status, through the
// cursor; hostile content comes out as text in JSON that holds no markup.
func TestMessagesAPI(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	reqs := make([]mq.EnqueueRequest, 250)
	for i := range reqs {
		reqs[i] = mq.EnqueueRequest{Message: map[string]any{"n": i, "pad": strings.Repeat("p", 80)}, Options: &mq.EnqueueOptions{MessageID: fmt.Sprintf("m%03d", i)}}
	}
	if _, err := c.EnqueueMany(ctx, "big", reqs...); err != nil {
		t.Fatal(err)
	}
	for i, h := range hostile {
		if _, err := c.Enqueue(ctx, "small", h, &mq.EnqueueOptions{MessageID: fmt.Sprintf("<b id=%d>", i)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, c, Options{PageSize: 100})

	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		code, body := get(t, srv, "/mq/api/messages?queue=big&cursor="+cursor)
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		p := decodeJSON[messagesJSON](t, body)
		if len(p.Messages) > 100 {
			t.Fatalf("a page of %d", len(p.Messages))
		}
		for _, m := range p.Messages {
			seen[m.ID] = true
			if m.Status != "queued" || m.DecodeError != "" || !strings.Contains(m.Content, `"pad"`) {
				t.Fatalf("message %+v", m)
			}
		}
		pages++
		if cursor = p.Cursor; cursor == "" {
			break
		}
	}
	if len(seen) != 250 || pages < 3 {
		t.Fatalf("%d messages in %d pages", len(seen), pages)
	}

	code, body := get(t, srv, "/mq/api/messages?queue=small")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	for _, bad := range []string{"<", ">"} {
		if strings.Contains(body, bad) {
			t.Errorf("the JSON holds a raw %q: %s", bad, body)
		}
	}
	p := decodeJSON[messagesJSON](t, body)
	byID := map[string]messageJSON{}
	for _, m := range p.Messages {
		byID[m.ID] = m
	}
	if m := byID["<b id=0>"]; m.Content != `"<img src=x onerror=\"window.__pwned=1\">"` || m.DecodeError != "" {
		t.Errorf("a hostile string, kept as text: %+v", m)
	}
	if m := byID["<b id=1>"]; !strings.Contains(m.Content, `"<script>window.__pwned=2</script>": "\"><svg onload=\"window.__pwned=3\">"`) {
		t.Errorf("a hostile map, kept as text: %+v", m)
	}
	if m := byID["<b id=2>"]; m.DecodeError == "" || m.Content != `"\xff\xfe<script>window.__pwned=4</script>"` {
		t.Errorf("undecodable bytes, shown as such: %+v", m)
	}

	for _, bad := range []string{"?queue=a*", "?queue=big&cursor=x", "?queue=big&limit=-1", ""} {
		if code, body := get(t, srv, "/mq/api/messages"+bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestReadOnly: by default every action is refused and changes nothing.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "q", "x", &mq.EnqueueOptions{MessageID: "a"}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})
	for _, path := range []string{"pause", "resume", "delete", "dead/requeue", "dead/delete"} {
		code, body := post(t, srv, "/mq/api/"+path, `{"queue":"q","id":"a"}`, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "read-only") {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	n, err := c.Inspector().QueueCounts(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if n.Paused || n.Queued != 1 {
		t.Errorf("a read-only dashboard changed the queue: %+v", n)
	}
	if code, _ := get(t, srv, "/mq/api/pause"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of an action: %d", code)
	}
}

// TestActionsCSRF: with actions allowed, an action needs the page's
// header, a JSON body and, when the browser names one, the same origin.
func TestActionsCSRF(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "q", "x", &mq.EnqueueOptions{MessageID: "a"}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{AllowActions: true})
	paused := func() bool {
		n, err := c.Inspector().QueueCounts(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		return n.Paused
	}
	body := `{"queue":"q"}`
	refused := map[string]map[string]string{
		"no header":    {"Content-Type": "application/json"},
		"a form post":  {"Content-Type": "application/x-www-form-urlencoded", ActionHeader: "1"},
		"cross-site":   {"Content-Type": "application/json", ActionHeader: "1", "Sec-Fetch-Site": "cross-site"},
		"other origin": {"Content-Type": "application/json", ActionHeader: "1", "Origin": "https://evil.example"},
		"wrong value":  {"Content-Type": "application/json", ActionHeader: "yes"},
	}
	for name, h := range refused {
		code, resp := post(t, srv, "/mq/api/pause", body, h)
		if code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
			t.Errorf("%s: %d %s", name, code, resp)
		}
		if paused() {
			t.Fatalf("%s paused the queue", name)
		}
	}

	same := map[string]string{"Content-Type": "application/json", ActionHeader: "1", "Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}
	code, resp := post(t, srv, "/mq/api/pause", body, same)
	if code != http.StatusOK || decodeJSON[actionResult](t, resp) != (actionResult{Changed: true}) || !paused() {
		t.Fatalf("pause: %d %s", code, resp)
	}
	code, resp = post(t, srv, "/mq/api/resume", body, nil)
	if code != http.StatusOK || paused() {
		t.Fatalf("resume: %d %s", code, resp)
	}
	code, resp = post(t, srv, "/mq/api/delete", `{"queue":"q","id":"a"}`, nil)
	if code != http.StatusOK || !decodeJSON[actionResult](t, resp).Changed {
		t.Fatalf("delete: %d %s", code, resp)
	}
	if st, _ := c.Inspector().MessageStatus(ctx, "q", "a"); st != mq.StatusNone {
		t.Fatalf("deleted message: %s", st)
	}
	for name, b := range map[string]string{"bad queue": `{"queue":"a*"}`, "not JSON": `queue=q`, "unknown field": `{"queue":"q","x":1}`} {
		if code, resp := post(t, srv, "/mq/api/pause", b, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, resp)
		}
	}
}

// TestPageAndAssets: the page, its assets and their headers, under the
// mount path, with the slash added when it is missing.
func TestPageAndAssets(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	srv := serve(t, c, Options{})
	for path, want := range map[string]string{"/mq/": "text/html", "/mq/static/app.js": "javascript", "/mq/static/app.css": "text/css"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	// Mounted with StripPrefix("/mq") alone, /mq reaches the handler as
	// an empty path: it adds the slash, relative to where it is.
	rec := httptest.NewRecorder()
	http.StripPrefix("/mq", New(c, Options{})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/mq", nil))
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusMovedPermanently || loc != "mq/" {
		t.Errorf("/mq: %d to %q", rec.Code, loc)
	}
	if code, _ := get(t, srv, "/mq/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

// TestCluster: the dashboard on a Redis Cluster queue (keys in braces).
func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.SharedCluster(t)
	c, err := mq.New(cl.Client(t), &mq.Config{Cluster: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		if _, err := c.Enqueue(ctx, "orders", i, &mq.EnqueueOptions{MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Enqueue(ctx, "orders", "later", &mq.EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{AllowActions: true})
	q := findQueue(t, overviewOf(t, srv), "orders")
	if q.Counts == nil || *q.Counts != (counts{Queued: 4, Backoff: 1, Total: 5}) {
		t.Fatalf("cluster counts %+v (%s)", q.Counts, q.Error)
	}
	code, body := get(t, srv, "/mq/api/messages?queue=orders")
	if p := decodeJSON[messagesJSON](t, body); code != http.StatusOK || len(p.Messages) != 5 {
		t.Fatalf("cluster messages: %d %s", code, body)
	}
	if code, body := post(t, srv, "/mq/api/pause", `{"queue":"orders"}`, nil); code != http.StatusOK {
		t.Fatalf("cluster pause: %d %s", code, body)
	}
	if n, err := c.Inspector().QueueCounts(ctx, "orders"); err != nil || !n.Paused {
		t.Fatalf("cluster queue not paused: %+v %v", n, err)
	}
}

// TestWorkers: api/workers lists the queue's running workers from their
// heartbeats in Redis, with what they tell of themselves, and not a worker
// that stopped.
func TestWorkers(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	idle := mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })
	gone, err := c.StartWorker(ctx, "emails", &mq.WorkerConfig{Handler: idle})
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := c.StartWorker(ctx, "emails", &mq.WorkerConfig{Handler: idle, HandlerThreads: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 3 {
		if _, err := c.Enqueue(ctx, "emails", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, c, Options{})

	var got workersJSON
	queuetest.WaitFor(t, "the running worker's heartbeat, after its three handlings", func() bool {
		code, body := get(t, srv, "/mq/api/workers?queue=emails")
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		got = decodeJSON[workersJSON](t, body)
		return len(got.Workers) > 0 && got.Workers[0].Handled == 3
	})
	if k := got.Workers[0]; k.Failed != 0 || k.HandlingP99MS <= 0 || k.HandlingP50MS > k.HandlingP99MS {
		t.Errorf("worker %+v: want 0 failed and handling percentiles", k)
	}
	host, _ := os.Hostname()
	if got.Queue != "emails" || len(got.Workers) != 1 {
		t.Fatalf("workers %+v, want only %s (not the stopped %s)", got, w.ID(), gone.ID())
	}
	k := got.Workers[0]
	if k.ID != w.ID() || k.Host != host || k.PID != os.Getpid() || k.Version != mq.Version ||
		k.HandlerThreads != 3 || k.Busy != 0 || k.StartedMS == 0 || k.LastBeatMS < k.StartedMS {
		t.Errorf("worker %+v, want id %s, host %s, pid %d, version %s, 3 idle handlers", k, w.ID(), host, os.Getpid(), mq.Version)
	}

	// A stopped worker leaves the list at once.
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv, "/mq/api/workers?queue=emails")
	if got := decodeJSON[workersJSON](t, body); code != http.StatusOK || len(got.Workers) != 0 {
		t.Errorf("after Stop: %d %s", code, body)
	}
	if code, body := get(t, srv, "/mq/api/workers?queue="); code != http.StatusBadRequest {
		t.Errorf("no queue: %d %s", code, body)
	}
}

// TestMessageAPI: one message through the library's single-message read,
// with what a page's row leaves out; a message not in the queue is a 404
// that says whether a dead letter of the id is kept.
func TestMessageAPI(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	bury(t, c, "q", map[string]any{"gone": 1})
	if _, err := c.Enqueue(ctx, "q", map[string]any{"to": "ada"}, &mq.EnqueueOptions{MessageID: "m",
		Metadata: map[string]string{"trace": "t1"}, LockTime: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{})

	code, body := get(t, srv, "/mq/api/message?queue=q&id=m")
	m := decodeJSON[oneMessageJSON](t, body)
	if code != http.StatusOK || m.Queue != "q" || m.ID != "m" || m.Status != "queued" || m.LockTimeMS != 3000 ||
		m.Metadata["trace"] != "t1" || !strings.Contains(m.Content, `"to": "ada"`) || m.DeadLetter || m.Requeue != nil {
		t.Errorf("m: %d %+v", code, m)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=gone")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusNotFound || m.Status != "nil" || !m.DeadLetter {
		t.Errorf("a dead letter's id: %d %+v", code, m)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=never")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusNotFound || m.DeadLetter {
		t.Errorf("an id never enqueued: %d %+v", code, m)
	}
	if _, err := c.Enqueue(ctx, "q", "x", &mq.EnqueueOptions{MessageID: "p", MaxAttempts: 2, UniqueFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=p")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusOK || m.Policy != "max attempts 2, unique for 1h0m0s" {
		t.Errorf("a message's own policy: %d %+v", code, m)
	}
	if _, err := c.Enqueue(ctx, "q", "x", &mq.EnqueueOptions{MessageID: "hi", Priority: mq.PriorityHigh}); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=hi")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusOK || m.Priority != "high" {
		t.Errorf("a message's priority: %d %+v", code, m)
	}
	code, body = get(t, srv, "/mq/api/message?queue=q&id=p")
	if m := decodeJSON[oneMessageJSON](t, body); code != http.StatusOK || m.Priority != "" {
		t.Errorf("a normal message's priority: %d %+v", code, m)
	}
	for _, bad := range []string{"queue=a*&id=m", "queue=q&id=", "queue=q"} {
		if code, body := get(t, srv, "/mq/api/message?"+bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestOverviewHandoffs: a queue's counts carry the hand-off records
// waiting in it for a relay (docs/protocol.md §22).
func TestOverviewHandoffs(t *testing.T) {
	t.Parallel()
	c, rdb := newClient(t)
	if _, err := c.Enqueue(context.Background(), "jobs", "x", nil); err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(context.Background(), "carmine:mq:jobs:handoffs", "Cb1").Err(); err != nil {
		t.Fatal(err)
	}
	q := findQueue(t, overviewOf(t, serve(t, c, Options{})), "jobs")
	if q.Counts == nil || q.Counts.HandoffsPending != 1 {
		t.Fatalf("counts %+v, want 1 hand-off pending", q.Counts)
	}
}

package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(redistest.WithShared(m),
		// chromedp's browser process reaper and go-redis's pool reaper
		// outlive a test by a moment.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// quietLogger keeps the library's logs out of the test output unless -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newClient starts a redis-server for the test and answers a client on it.
func newClient(t *testing.T) (*mq.Client, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	c, err := mq.New(rdb, &mq.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, rdb
}

// hostile are message contents that would run script if a page put them
// into its markup.
var hostile = []any{
	`<img src=x onerror="window.__pwned=1">`,
	map[string]any{`<script>window.__pwned=2</script>`: `"><svg onload="window.__pwned=3">`},
	mq.Raw("\xff\xfe<script>window.__pwned=4</script>"), // not MessagePack: undecodable
}

// want are the counts fill leaves in a queue.
var want = counts{Queued: 7, Locked: 2, Backoff: 2, Done: 3, Dead: 2, Total: 14}

// deadError is the error of fill's dead letters.
const deadError = "smtp 550: mailbox unavailable"

// fill leaves queue q with known counts, with real workers: 3 messages
// handled in a dedupe window of an hour (done), 2 whose handler failed
// with mq.Final (dead letters), 2 held by a worker's
// handlers (locked) until the test ends, 2 in a backoff of an hour, and 7
// queued, 3 of them hostile. It answers the worker that holds the locked
// ones, running (both its handlers busy) until the test ends; the first
// worker is stopped.
func fill(t *testing.T, c *mq.Client, q string) *mq.Worker {
	t.Helper()
	ctx := context.Background()
	counts := func() mq.QueueCounts {
		n, err := c.Inspector().QueueCounts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	enqueue := func(id string, msg any, backoff time.Duration) {
		t.Helper()
		if _, err := c.Enqueue(ctx, q, msg, &mq.EnqueueOptions{MessageID: id, InitialBackoff: backoff}); err != nil {
			t.Fatal(err)
		}
	}

	// Done and dead, by one worker.
	for i := range 3 {
		enqueue(fmt.Sprintf("done-%d", i), map[string]any{"step": "done", "n": i}, 0)
	}
	for i := range 2 {
		enqueue(fmt.Sprintf("dead-%d", i), map[string]any{"to": fmt.Sprintf("gone%d@example.com", i), "n": i}, 0)
	}
	w1, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
		Prefetch: -1,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if strings.HasPrefix(m.ID, "dead-") {
				return mq.Final(errors.New(deadError))
			}
			return mq.SucceedWithBackoff(time.Hour)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	queuetest.WaitFor(t, "3 done and 2 dead", func() bool { n := counts(); return n.Done == 3 && n.Dead == 2 })
	if err := w1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counts(); n.Locked != 0 || n.Queued != 0 || n.Total != 3 {
		t.Fatalf("after the first worker: %+v", n)
	}

	for i := range 6 {
		enqueue(fmt.Sprintf("msg-%d", i), map[string]any{"to": fmt.Sprintf("user%d@example.com", i), "n": i}, 0)
	}
	for i, h := range hostile {
		enqueue(fmt.Sprintf("hostile-%d", i), h, 0)
	}
	enqueue("later-0", "in an hour", time.Hour)
	enqueue("later-1", "in an hour too", time.Hour)

	// Locked: two handlings held until the test ends.
	hold := make(chan struct{})
	var once sync.Once
	w2, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
		HandlerThreads: 2, Prefetch: -1,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return mq.Retry(0)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		once.Do(func() { close(hold) })
		_ = w2.Close()
	})
	queuetest.WaitFor(t, "2 locked", func() bool { return counts().Locked == 2 })
	return w2
}

// get answers the status and body of a GET of path on srv.
func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// post sends an action; header sets request headers (nil: the page's).
func post(t *testing.T, srv *httptest.Server, path, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header == nil {
		header = map[string]string{"Content-Type": "application/json", ActionHeader: "1"}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// bury makes dead letters of msgs (by id) in queue q with a real worker
// whose handler fails with mq.Final, its error naming the id. q holds no
// other message that the worker could take.
func bury(t *testing.T, c *mq.Client, q string, msgs map[string]any) {
	t.Helper()
	ctx := context.Background()
	before, err := c.Inspector().QueueCounts(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range msgs {
		if _, err := c.Enqueue(ctx, q, m, &mq.EnqueueOptions{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
		HandlerThreads: 4,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			return mq.Final(fmt.Errorf("cannot handle %s", m.ID))
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	queuetest.WaitFor(t, "the dead letters", func() bool {
		n, err := c.Inspector().QueueCounts(ctx, q)
		return err == nil && n.Dead == before.Dead+int64(len(msgs))
	})
}

package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// commandCalls reads Redis's count of calls by command since the last
// CONFIG RESETSTAT.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_hscan:calls=2,usec=...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		calls[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return calls
}

// fillMany enqueues n small messages to queue q, 1,000 per call.
func fillMany(t *testing.T, c *mq.Client, q string, n int) {
	t.Helper()
	reqs := make([]mq.EnqueueRequest, 0, 1000)
	for i := range n {
		reqs = append(reqs, mq.EnqueueRequest{Message: map[string]any{"n": i}, Options: &mq.EnqueueOptions{MessageID: fmt.Sprint(i)}})
		if len(reqs) == cap(reqs) || i == n-1 {
			if _, err := c.EnqueueMany(context.Background(), q, reqs...); err != nil {
				t.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
}

// TestPageViewCost: what a page view asks of Redis does not grow with the
// queue (20,000 messages and 300 dead letters here): a few calls, of
// commands that read no whole key, their work bounded by the page's size.
func TestPageViewCost(t *testing.T) {
	t.Parallel()
	c, rdb := newClient(t)
	dead := map[string]any{}
	for i := range 300 {
		dead[fmt.Sprintf("dead-%d", i)] = i
	}
	bury(t, c, "big", dead)
	fillMany(t, c, "big", 20000)
	srv := serve(t, c, Options{Queues: []string{"big"}})
	_, body := get(t, srv, "/mq/api/dead?queue=big")
	deadCursor := decodeJSON[deadPageJSON](t, body).Cursor
	if deadCursor == "" {
		t.Fatal("one page of 300 dead letters")
	}
	if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/mq/api/overview", "/mq/api/messages?queue=big", "/mq/api/workers?queue=big", "/mq/api/dead?queue=big", "/mq/api/dead?queue=big&cursor=" + url.QueryEscape(deadCursor)} {
		if code, body := get(t, srv, path); code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	// Redis counts the commands the scripts call too: a page of 50
	// messages reads a few fields of each, the counts a few lengths.
	calls := commandCalls(t, rdb)
	t.Logf("commands of a page view: %v", calls)
	var total int64
	for name, n := range calls {
		total += n
		switch name {
		case "hgetall", "hkeys", "hvals", "lrange", "smembers", "sscan", "zrange", "keys", "scan":
			t.Errorf("a page view called %s, which reads a whole key (%d times)", name, n)
		}
	}
	if calls["hscan"] > 2 || total > 20+10*50+2*(10+5*50) {
		t.Errorf("a page view took %d commands: %v", total, calls)
	}
}

// TestMillion times page views on a queue of a million messages and 10,000
// dead letters (the default bound). It takes
// a minute and half a gigabyte, so it runs only when asked:
// MQ_DASHBOARD_MILLION=1 go test -run TestMillion -v.
func TestMillion(t *testing.T) {
	if os.Getenv("MQ_DASHBOARD_MILLION") != "1" {
		t.Skip("set MQ_DASHBOARD_MILLION=1 to run")
	}
	c, _ := newClient(t)
	start := time.Now()
	dead := map[string]any{}
	for i := range 10_000 {
		dead[fmt.Sprintf("dead-%d", i)] = i
	}
	bury(t, c, "million", dead)
	t.Logf("buried 10,000 in %v", time.Since(start))
	start = time.Now()
	fillMany(t, c, "million", 1_000_000)
	t.Logf("enqueued 1,000,000 in %v", time.Since(start))
	srv := serve(t, c, Options{})
	cursor := ""
	for i := range 5 {
		for _, path := range []string{"/mq/api/overview", "/mq/api/messages?queue=million&cursor=" + cursor, "/mq/api/dead?queue=million"} {
			start := time.Now()
			code, body := get(t, srv, path)
			if code != http.StatusOK {
				t.Fatalf("%s: %d", path, code)
			}
			if strings.Contains(path, "messages") {
				cursor = decodeJSON[messagesJSON](t, body).Cursor
			}
			t.Logf("view %d %s: %v, %d bytes", i, path[:min(len(path), 30)], time.Since(start), len(body))
		}
	}
}

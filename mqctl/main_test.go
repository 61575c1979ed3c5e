package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // as main does
	os.Exit(redistest.WithShared(m).Run())
}

// result is what one run of mqctl did.
type result struct {
	code           int
	stdout, stderr string
}

// env is a test's environment for mqctl: REDIS_URL of its own server.
type env map[string]string

// run runs mqctl in-process with env, stdin and args, and answers what
// it did. It refuses to run without a Redis of the test's own, so that no
// test reaches the default 127.0.0.1:6379.
func (e env) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	own := e["REDIS_URL"] != "" || e["MQCTL_CLUSTER"] != "" || e["MQCTL_SENTINEL"] != ""
	for _, a := range args {
		if strings.HasPrefix(a, "--url") || strings.HasPrefix(a, "--cluster=") || a == "--cluster" || strings.HasPrefix(a, "--sentinel") {
			own = true
		}
	}
	if !own {
		t.Fatalf("mqctl %v: no Redis of the test's own (REDIS_URL, --url, --cluster or --sentinel)", args)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return e[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// ok runs mqctl and fails the test unless it exits 0.
func (e env) ok(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := e.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("mqctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs mqctl and fails the test unless it exits with code, with one
// line on stderr that holds want.
func (e env) fails(t *testing.T, code int, want string, stdin string, args ...string) result {
	t.Helper()
	r := e.run(t, stdin, args...)
	if r.code != code {
		t.Fatalf("mqctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	var errLines []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "mqctl: ") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], want) {
		t.Fatalf("mqctl %v: stderr %q, want one line \"mqctl: ...%s...\"", args, r.stderr, want)
	}
	return r
}

// decode decodes a run's JSON output into v.
func decode(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
}

// fixture is a throwaway redis-server with a library client on it.
type fixture struct {
	env    env
	rdb    *redis.Client
	client *mq.Client
	srv    *redistest.Server
}

func newFixture(t *testing.T, args ...string) *fixture {
	t.Helper()
	srv := redistest.Start(t, args...)
	rdb := srv.Client(t)
	c, err := mq.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{env: env{"REDIS_URL": "redis://" + srv.Addr + "/0"}, rdb: rdb, client: c, srv: srv}
}

// enqueue enqueues msg as id, failing the test on any error or refusal.
func (f *fixture) enqueue(t *testing.T, queue, id string, msg any) {
	t.Helper()
	res, err := f.client.Enqueue(context.Background(), queue, msg, &mq.EnqueueOptions{MessageID: id})
	if err != nil || !res.OK() {
		t.Fatalf("enqueue %s/%s: %v %v", queue, id, err, res.Refused)
	}
}

// age2h makes the message look first enqueued two hours ago, so that its
// age shows as "2h0m0s" whenever the test runs (udts, docs/protocol.md §1).
func (f *fixture) age2h(t *testing.T, queue string, ids ...string) {
	t.Helper()
	ctx := context.Background()
	now, err := f.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := f.rdb.HSet(ctx, "carmine:mq:"+queue+":udts", id, now.Add(-2*time.Hour).UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// ids answers the ids of the views, sorted.
func ids(views []messageView) []string {
	out := make([]string, len(views))
	for i, v := range views {
		out[i] = v.ID
	}
	slices.Sort(out)
	return out
}

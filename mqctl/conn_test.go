package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
)

// TestACL connects as an ACL user, with the password from a flag, from
// the environment or from the URL, and fails clearly with a wrong one.
func TestACL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.rdb.Do(ctx, "ACL", "SETUSER", "ops", "on", ">s3cret", "~carmine:mq:*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
		t.Fatal(err)
	}
	url := f.env["REDIS_URL"]
	f.env.fails(t, exitFailure, "", "", "queues") // the default user is off now
	f.env.ok(t, "", "--user", "ops", "--password", "s3cret", "enqueue", "q", "a", "-d", "1")
	env{"REDIS_URL": url, "MQCTL_USER": "ops", "MQCTL_PASSWORD": "s3cret"}.ok(t, "", "message", "q", "a")
	withCreds := strings.Replace(url, "redis://", "redis://ops:s3cret@", 1)
	if r := (env{"REDIS_URL": withCreds}).ok(t, "", "queues"); !strings.Contains(r.stdout, "q ") {
		t.Errorf("queues as ops: %q", r.stdout)
	}
	f.env.fails(t, exitFailure, "WRONGPASS", "", "--user", "ops", "--password", "wrong", "queues")
	// A flag wins over the environment.
	env{"REDIS_URL": url, "MQCTL_USER": "ops", "MQCTL_PASSWORD": "wrong"}.ok(t, "", "--password", "s3cret", "queues")
}

// TestCluster runs the commands against a Redis Cluster, whose queues use
// the {Q} key layout.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.SharedCluster(t)
	e := env{"MQCTL_CLUSTER": strings.Join(c.Addrs, ",")}
	for _, q := range []string{"emails", "sms", "push"} {
		e.ok(t, "", "enqueue", q, "m1", "-d", `{"to":"ada"}`)
	}
	r := e.ok(t, "", "queues")
	for _, q := range []string{"emails", "sms", "push"} {
		if !strings.Contains(r.stdout, "\n"+q+" ") {
			t.Errorf("queues on the cluster misses %s:\n%s", q, r.stdout)
		}
	}
	// The library sees them in the cluster layout.
	lib, err := mq.New(c.Client(t), &mq.Config{Cluster: true})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := lib.Inspector().MessageStatus(context.Background(), "sms", "m1"); err != nil || s != mq.StatusQueued {
		t.Errorf("library sees sms/m1 as %v, %v", s, err)
	}
	var v messageView
	decode(t, e.ok(t, "", "message", "sms", "m1", "--json"), &v)
	if v.Status != "queued" || v.Content == nil {
		t.Errorf("message on the cluster: %+v", v)
	}
	var s showView
	decode(t, e.ok(t, "", "show", "push", "--json"), &s)
	if len(s.Messages) != 1 || s.Total != 1 {
		t.Errorf("show on the cluster: %+v", s)
	}
	// A queue left with dead letters alone is listed, on whichever master
	// holds it, and cleared.
	buryOn(t, c.Client(t), true, "bounced", 10, finalAll("bad"), req("b1", 1))
	var qs []queueView
	decode(t, e.ok(t, "", "queues", "--json", "bounced"), &qs)
	if len(qs) != 1 || qs[0] != (queueView{Queue: "bounced", Dead: 1}) {
		t.Errorf("dead-only queue on the cluster: %+v", qs)
	}
	e.ok(t, "", "pause", "emails")
	e.ok(t, "", "delete", "emails", "m1")
	e.ok(t, "", "clear", "--all", "--yes")
	if r := e.ok(t, "", "queues"); !strings.HasPrefix(r.stdout, "no queues on ") {
		t.Errorf("after clear --all: %q", r.stdout)
	}
}

// TestClusterKeys: --cluster-keys reads and writes the {Q} layout on a
// single Redis, which the plain layout does not see.
func TestClusterKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env.ok(t, "", "--cluster-keys", "enqueue", "q", "a", "-d", "1")
	if r := f.env.ok(t, "", "queues"); !strings.HasPrefix(r.stdout, "no queues on ") {
		t.Errorf("plain layout sees %q", r.stdout)
	}
	if r := f.env.ok(t, "", "--cluster-keys", "queues"); !strings.Contains(r.stdout, "\nq ") {
		t.Errorf("cluster layout: %q", r.stdout)
	}
	if n, err := f.rdb.Exists(context.Background(), "carmine:mq:{q}:messages").Result(); err != nil || n != 1 {
		t.Errorf("no {q} key: %v %v", n, err)
	}
}

// TestSentinel finds the primary through the sentinels.
func TestSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.SharedSentinel(t)
	e := env{"MQCTL_SENTINEL": strings.Join(s.SentinelAddrs, ",")}
	e.fails(t, exitUsage, "--sentinel needs --master NAME", "", "queues")
	e.ok(t, "", "--master", s.MasterName, "enqueue", "q", "a", "-d", "1")
	if r := e.ok(t, "", "--master", s.MasterName, "queues"); !strings.Contains(r.stdout, "\nq ") {
		t.Errorf("queues through Sentinel: %q", r.stdout)
	}
	e.fails(t, exitFailure, "", "", "--master", "nosuchmaster", "--timeout", "5s", "queues")
}

// TestServerNamed: mqctl says which Redis it read when it found nothing
// and when it failed, and never uses the default Redis without saying so.
func TestServerNamed(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: the dial is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	e := env{"REDIS_URL": "redis://:secret@" + addr + "/3"}
	r := e.fails(t, exitFailure, "mqctl: redis://"+addr+"/3: ", "", "queues")
	if strings.Contains(r.stderr, "secret") {
		t.Errorf("the password in %q", r.stderr)
	}

	// An empty REDIS_URL: the default is named before anything is dialled
	// (the bad flag stops mqctl there, so that no test reaches 6379).
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--max-message-size", "-1", "queues"}, strings.NewReader(""), &stdout, &stderr,
		func(k string) string { return map[string]string{"REDIS_URL": ""}[k] })
	want := "mqctl: using redis://127.0.0.1:6379/0 (the default: neither --url nor REDIS_URL is set)\n"
	if code != exitUsage || !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("empty REDIS_URL: exit %d, stderr %q, want it to start %q", code, stderr.String(), want)
	}
}

func TestServerName(t *testing.T) {
	for _, c := range []struct {
		flags connFlags
		want  string
	}{
		{connFlags{url: "redis://u:pw@h:7/2", db: -1}, "redis://u@h:7/2"},
		{connFlags{url: "redis://h:7/2", db: 5, user: "ops"}, "redis://ops@h:7/5"},
		{connFlags{url: "rediss://h:7", db: -1}, "rediss://h:7/0"},
		{connFlags{url: "redis://h:7", db: -1, tls: true}, "rediss://h:7/0"},
		{connFlags{url: defaultURL, db: -1, urlDefaulted: true}, "redis://127.0.0.1:6379/0 (the default: neither --url nor REDIS_URL is set)"},
		{connFlags{url: "nonsense://u:pw@h", db: -1}, "nonsense://u:xxxxx@h"},
		{connFlags{cluster: []string{"a:1", "b:2"}}, "Redis Cluster a:1,b:2"},
		{connFlags{sentinel: []string{"s:1"}, master: "m"}, `Sentinel master "m" via s:1`},
	} {
		if got := c.flags.server(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.flags, got, c.want)
		}
	}
}

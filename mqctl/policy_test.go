package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestMessagePolicy: mqctl message shows a message's own policy, in words
// and in JSON.
func TestMessagePolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.client.Enqueue(context.Background(), "jobs", "x", &mq.EnqueueOptions{MessageID: "p", MaxAttempts: 3,
		Backoff: &mq.RetryBackoff{Kind: mq.BackoffExponential, Base: time.Second, Max: time.Minute, Jitter: 0.5},
		Timeout: 30 * time.Second, UniqueFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.enqueue(t, "jobs", "plain", "y")

	r := f.env.ok(t, "", "message", "jobs", "p")
	if !strings.Contains(r.stdout, "max attempts 3, backoff exp 1s..1m0s jitter 0.5, timeout 30s, unique for 1h0m0s") {
		t.Errorf("no policy row:\n%s", r.stdout)
	}
	var v messageView
	decode(t, f.env.ok(t, "", "message", "jobs", "p", "--json"), &v)
	if v.Policy == nil || v.Policy.MaxAttempts != 3 || v.Policy.TimeoutMS != 30_000 || v.Policy.UniqueForMS != 3_600_000 ||
		v.Policy.Backoff == nil || v.Policy.Backoff.Kind != "exp" || v.Policy.Backoff.MaxMS != 60_000 {
		t.Errorf("--json policy: %+v", v.Policy)
	}
	if r = f.env.ok(t, "", "message", "jobs", "plain"); strings.Contains(r.stdout, "policy") {
		t.Errorf("a message without policy shows one:\n%s", r.stdout)
	}
}

// TestDeadShowPolicy: mqctl dead show shows the buried message's own
// policy.
func TestDeadShowPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.bury(t, "jobs", 10, finalAll("bad"),
		mq.EnqueueRequest{Message: "x", Options: &mq.EnqueueOptions{MessageID: "p", MaxAttempts: 2, UniqueFor: time.Minute}})
	r := f.env.ok(t, "", "dead", "show", "jobs", "p")
	if !strings.Contains(r.stdout, "max attempts 2, unique for 1m0s") {
		t.Errorf("no policy row:\n%s", r.stdout)
	}
	var v deadView
	decode(t, f.env.ok(t, "", "dead", "show", "jobs", "p", "--json"), &v)
	if v.Policy == nil || v.Policy.MaxAttempts != 2 || v.Policy.UniqueForMS != 60_000 {
		t.Errorf("--json policy: %+v", v.Policy)
	}
}

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// TestMessagePriority: mqctl message shows a message's priority (§18)
// when it is not normal, and always in JSON.
func TestMessagePriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for id, p := range map[string]mq.Priority{"hi": mq.PriorityHigh, "lo": mq.PriorityLow} {
		if _, err := f.client.Enqueue(context.Background(), "jobs", "x", &mq.EnqueueOptions{MessageID: id, Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	f.enqueue(t, "jobs", "plain", "y")

	for id, want := range map[string]string{"hi": "high", "lo": "low"} {
		r := f.env.ok(t, "", "message", "jobs", id)
		if !strings.Contains(r.stdout, "priority") || !strings.Contains(r.stdout, want) {
			t.Errorf("no priority row %q:\n%s", want, r.stdout)
		}
		var v messageView
		decode(t, f.env.ok(t, "", "message", "jobs", id, "--json"), &v)
		if v.Priority != want {
			t.Errorf("--json priority of %s: %q, want %q", id, v.Priority, want)
		}
	}
	if r := f.env.ok(t, "", "message", "jobs", "plain"); strings.Contains(r.stdout, "priority") {
		t.Errorf("a normal message shows a priority row:\n%s", r.stdout)
	}
	var v messageView
	decode(t, f.env.ok(t, "", "message", "jobs", "plain", "--json"), &v)
	if v.Priority != "normal" {
		t.Errorf("--json priority of a normal message: %q", v.Priority)
	}
}

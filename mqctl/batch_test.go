package main

import (
	"context"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// TestBatch: mqctl batch shows a batch's progress, from its completion
// queue; an unknown batch exits with code 3.
func TestBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b, _, err := f.client.EnqueueBatch(context.Background(),
		[]mq.BatchMessage{{Queue: "jobs", Message: 1}, {Queue: "jobs", Message: 2}},
		mq.BatchMessage{Queue: "done", Message: "all"})
	if err != nil {
		t.Fatal(err)
	}
	r := f.env.ok(t, "", "batch", "done", b)
	for _, want := range []string{"members     2", "finished    0", "running", "batch-" + b + "-done"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in\n%s", want, r.stdout)
		}
	}
	var v batchView
	decode(t, f.env.ok(t, "", "batch", "done", b, "--json"), &v)
	if v.Batch != b || v.Members != 2 || v.Finished != 0 || v.Done != nil {
		t.Errorf("--json: %+v", v)
	}
	f.env.fails(t, exitNotFound, "not found", "", "batch", "done", "nope")
}

// TestShowHandoffsPending: mqctl show counts the hand-off records waiting
// in a queue for a relay, in a row of its own and in --json.
func TestShowHandoffsPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "jobs", "j1", "x")
	if r := f.env.ok(t, "", "show", "jobs"); strings.Contains(r.stdout, "hand-offs") {
		t.Errorf("a hand-offs row with none pending:\n%s", r.stdout)
	}
	if err := f.rdb.RPush(context.Background(), "carmine:mq:jobs:handoffs", "Cb1", "Cb2").Err(); err != nil {
		t.Fatal(err)
	}
	if r := f.env.ok(t, "", "show", "jobs"); !strings.Contains(r.stdout, "hand-offs pending  2") {
		t.Errorf("no hand-offs row in\n%s", r.stdout)
	}
	var v showView
	decode(t, f.env.ok(t, "", "show", "jobs", "--json"), &v)
	if v.HandoffsPending != 2 {
		t.Errorf("--json: handoffs_pending %d", v.HandoffsPending)
	}
}

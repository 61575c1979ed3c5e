package main

import (
	"context"
	"slices"
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

// TestShowReadyByPriority: show tells how many ready messages are high
// and low, for a queue using priorities, and always in JSON.
func TestShowReadyByPriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for id, p := range map[string]mq.Priority{"hi": mq.PriorityHigh, "lo1": mq.PriorityLow, "lo2": mq.PriorityLow} {
		if _, err := f.client.Enqueue(context.Background(), "jobs", "x", &mq.EnqueueOptions{MessageID: id, Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	f.enqueue(t, "plain", "p", "y")
	r := f.env.ok(t, "", "show", "jobs")
	for _, want := range []string{"ready high", "<= 1", "ready low", "<= 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show does not tell %q:\n%s", want, r.stdout)
		}
	}
	var v showView
	decode(t, f.env.ok(t, "", "show", "jobs", "--json"), &v)
	if v.ReadyHigh != 1 || v.ReadyLow != 2 || v.Queued != 3 {
		t.Errorf("--json: ready high %d, low %d, queued %d", v.ReadyHigh, v.ReadyLow, v.Queued)
	}
	if r := f.env.ok(t, "", "show", "plain"); strings.Contains(r.stdout, "ready high") {
		t.Errorf("a queue without priorities shows them:\n%s", r.stdout)
	}
}

// TestWorkersMultiQueue: a multi-queue worker is listed under each of
// its queues, with all its queues and their order.
func TestWorkersMultiQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.enqueue(t, "mail", "m", "x") // the queues exist
	f.enqueue(t, "reports", "r", "x")
	w, err := f.client.NewMultiWorker(mq.Weighted{{Queue: "mail", Weight: 3}, {Queue: "reports", Weight: 1}},
		&mq.WorkerConfig{Handler: mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(ctx) }()
	var views []workerView
	waitUntil(t, "the worker's heartbeat", func() bool {
		decode(t, f.env.ok(t, "", "workers", "reports", "--json"), &views)
		return len(views) == 1
	})
	if want := []mq.QueueWeight{{Queue: "mail", Weight: 3}, {Queue: "reports", Weight: 1}}; !slices.Equal(views[0].Queues, want) || views[0].Strict {
		t.Errorf("--json queues %v strict %v, want %v", views[0].Queues, views[0].Strict, want)
	}
	r := f.env.ok(t, "", "workers", "mail")
	if !strings.Contains(r.stdout, "QUEUES") || !strings.Contains(r.stdout, "mail:3, reports:1") {
		t.Errorf("workers does not show the queues:\n%s", r.stdout)
	}
}

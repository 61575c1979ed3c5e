package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// TestUnknownQueue: a command on a queue that does not exist says so,
// with exit code 3, and creates nothing: a typo in pause no longer
// answers "is paused" and leaves a paused queue nobody uses; show no
// longer prints zeros. pause --create pauses it all the same.
func TestUnknownQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.enqueue(t, "emails", "m", 1)
	names := func() []string {
		n, err := f.client.Inspector().QueueNames(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "pause", "emials")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "resume", "emials")
	f.env.fails(t, exitNotFound, `no such queue: "nosuchqueue"`, "", "show", "nosuchqueue")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "dead", "list", "emials")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "dead", "requeue", "emials", "--all", "--yes")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "dead", "delete", "emials", "--all", "--yes")
	// A message or delete of an id names its queue too: a typo there is
	// not "not in queue", which reads as a message handled and gone.
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "message", "emials", "m")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "delete", "emials", "m")
	f.env.fails(t, exitNotFound, `message "nope" is not in queue "emails"`, "", "message", "emails", "nope")
	f.env.fails(t, exitNotFound, `message "nope" is not in queue "emails"`, "", "delete", "emails", "nope")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "schedules", "list", "emials")
	f.env.fails(t, exitNotFound, `no such queue: "emials"`, "", "schedules", "pause", "emials", "hourly")
	if r := f.env.ok(t, "", "schedules", "list", "emails"); r.stdout != "no schedules of emails\n" {
		t.Errorf("schedules of a queue that exists: %q", r.stdout)
	}
	f.env.fails(t, exitNotFound, `queue "emails" has no schedule "hourly"`, "", "schedules", "pause", "emails", "hourly")
	if got := names(); !slices.Equal(got, []string{"emails"}) {
		t.Errorf("the refusals created queues: %v", got)
	}
	if r := f.env.ok(t, "", "pause", "emails"); r.stdout != "emails is paused\n" {
		t.Errorf("pause of a queue that exists: %q", r.stdout)
	}

	if r := f.env.ok(t, "", "pause", "--create", "later"); r.stdout != "later is paused\n" {
		t.Errorf("pause --create: %q", r.stdout)
	}
	if got := names(); !slices.Equal(got, []string{"emails", "later"}) {
		t.Errorf("after pause --create: %v", got)
	}
	f.env.ok(t, "", "resume", "later")
	if r := f.env.ok(t, "", "show", "later"); !strings.Contains(r.stdout, "later") {
		t.Errorf("show of an empty queue that exists: %q", r.stdout)
	}
	f.env.fails(t, exitUsage, "unknown flag: --create", "", "resume", "--create", "x")
}

// TestQueuesRegistry: mqctl queues lists a queue with a running worker
// and nothing in it, steadily (it came and went between runs a second
// apart), and no longer lists a queue once cleared.
func TestQueuesRegistry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	w, err := f.client.StartWorker(ctx, "idle", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var views []queueView
	waitUntil(t, "the worker's queue listed", func() bool {
		decode(t, f.env.ok(t, "", "queues", "--json"), &views)
		return len(views) == 1
	})
	if views[0] != (queueView{Queue: "idle"}) {
		t.Errorf("queues: %+v", views)
	}
	f.enqueue(t, "emails", "m", 1)
	f.env.ok(t, "", "clear", "--yes", "emails")
	decode(t, f.env.ok(t, "", "queues", "--json"), &views)
	if len(views) != 1 || views[0].Queue != "idle" {
		t.Errorf("after clear emails: %+v", views)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestCancel: mqctl cancel deletes a queued message, tells a running
// one's worker, and exits 3 for an id the queue does not hold; mqctl
// message shows a running message's progress and the cancel asked.
func TestCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.enqueue(t, "jobs", "queued", "x")
	r := f.env.ok(t, "", "cancel", "jobs", "queued")
	if !strings.Contains(r.stdout, "cancelled queued in jobs: it was queued") {
		t.Errorf("cancel of a queued message:\n%s", r.stdout)
	}
	f.env.fails(t, exitNotFound, `message "queued" is not in queue "jobs"`, "", "cancel", "jobs", "queued")

	// A running message, whose handler reports progress and ignores its
	// context until the test lets it go.
	f.enqueue(t, "jobs", "running", "y")
	reported, release := make(chan struct{}), make(chan struct{})
	w, err := f.client.StartWorker(ctx, "jobs", &mq.WorkerConfig{LockTime: time.Minute,
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			if err := m.ProgressNow(ctx, 40, "copying"); err != nil {
				return err
			}
			close(reported)
			<-release
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	<-reported
	r = f.env.ok(t, "", "message", "jobs", "running")
	if !strings.Contains(r.stdout, "progress") || !strings.Contains(r.stdout, "40  copying") {
		t.Errorf("no progress row:\n%s", r.stdout)
	}
	var v cancelView
	decode(t, f.env.ok(t, "", "cancel", "jobs", "running", "--json"), &v)
	if v.Result != string(mq.CancelSignalled) {
		t.Errorf("cancel of a running message: %+v", v)
	}
	var m messageView
	decode(t, f.env.ok(t, "", "message", "jobs", "running", "--json"), &m)
	if m.Progress == nil || m.Progress.N != 40 || m.Progress.Note != "copying" || m.CancelRequested.IsZero() {
		t.Errorf("--json progress and cancel: %+v %v", m.Progress, m.CancelRequested)
	}
	close(release)
}

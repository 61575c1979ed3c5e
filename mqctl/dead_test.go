package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// bury makes dead letters the way production does: it enqueues reqs on
// queue, which must hold no other message, and runs a real worker whose handler fails (fail answers the error for a
// message; nil means success) until every message was handled, then stops
// it, which waits for the outcomes to be recorded. The worker's
// MaxAttempts is maxAttempts, and a failure is retried at once.
func (f *fixture) bury(t *testing.T, queue string, maxAttempts int, fail func(m *mq.Message) error, reqs ...mq.EnqueueRequest) {
	t.Helper()
	buryOn(t, f.rdb, false, queue, maxAttempts, fail, reqs...)
}

// buryOn is bury on any Redis, in the cluster layout or not.
func buryOn(t *testing.T, rdb redis.UniversalClient, cluster bool, queue string, maxAttempts int, fail func(m *mq.Message) error, reqs ...mq.EnqueueRequest) {
	t.Helper()
	ctx := context.Background()
	// A client that keeps the worker's logs (an error per dead letter) out
	// of the test's output.
	client, err := mq.New(rdb, &mq.Config{Cluster: cluster, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	before, err := client.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	if before.Total != 0 {
		t.Fatalf("bury: %s holds %d messages already, which the worker would take", queue, before.Total)
	}
	if _, err := client.EnqueueMany(ctx, queue, reqs...); err != nil {
		t.Fatal(err)
	}
	// One signal per handling that ends its message: a success, or a
	// failure for good (the Observer's outcome, which is the worker's own
	// reading of the handler's answer).
	ended := make(chan struct{}, len(reqs))
	w, err := client.StartWorker(ctx, queue, &mq.WorkerConfig{
		MaxAttempts:  maxAttempts,
		RetryBackoff: func(int) time.Duration { return 0 },
		Handler:      mq.HandlerFunc(func(_ context.Context, m *mq.Message) error { return fail(m) }),
		Observer: mq.ObserverFunc(func(h mq.Handling) {
			if h.Outcome == mq.OutcomeSucceeded || h.Outcome == mq.OutcomeDead {
				ended <- struct{}{}
			}
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range reqs {
		<-ended
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := client.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	if after.Dead <= before.Dead {
		t.Fatalf("bury: %d dead letters before, %d after", before.Dead, after.Dead)
	}
}

// final is a handler's error that makes its message a dead letter at once.
func final(text string) error { return mq.Final(fmt.Errorf("%s: final", text)) }

// finalAll fails every message for good with text.
func finalAll(text string) func(*mq.Message) error {
	return func(*mq.Message) error { return final(text) }
}

func req(id string, msg any) mq.EnqueueRequest {
	return mq.EnqueueRequest{Message: msg, Options: &mq.EnqueueOptions{MessageID: id}}
}

// stamps are the times of the Redis server in tables, which change from
// run to run.
var stamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func unstamped(s string) string { return stamps.ReplaceAllString(s, "2006-01-02T15:04:05Z") }

// deadIDs answers the ids of a page, in its order.
func deadIDs(v deadListView) []string {
	out := make([]string, len(v.DeadLetters))
	for i, d := range v.DeadLetters {
		out[i] = d.ID
	}
	return out
}

func TestDeadList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env.fails(t, exitNotFound, `no such queue: "jobs"`, "", "dead", "list", "jobs")
	// Paused and resumed, the queue exists, empty.
	if _, err := f.client.Inspector().PauseQueue(context.Background(), "jobs"); err != nil {
		t.Fatal(err)
	}
	if r := f.env.ok(t, "", "dead", "list", "jobs"); r.stdout != "no dead letters in jobs\n" {
		t.Errorf("no dead letters: %q", r.stdout)
	}
	if _, err := f.client.Inspector().ResumeQueue(context.Background(), "jobs"); err != nil {
		t.Fatal(err)
	}
	// One at a time, so that they die in this order: newest first is e, d,
	// ..., a (and so is the reverse order of ids, which breaks ties of a
	// millisecond).
	f.bury(t, "jobs", 10, finalAll("smtp: 550 no such user \x1b[31m"), req("a", map[string]any{"to": "ada@example.com"}))
	f.bury(t, "jobs", 10, finalAll("bad"), req("b", mq.Raw("not msgpack at all")))
	f.bury(t, "jobs", 2, func(*mq.Message) error { return errors.New("timeout") }, req("c", []any{1, "x"}))
	f.bury(t, "jobs", 10, finalAll("bad"), req("d", 4))
	f.bury(t, "jobs", 10, finalAll("bad"), req("e", 5))

	r := f.env.ok(t, "", "dead", "list", "jobs", "--limit", "3")
	golden(t, "dead-list.txt", unstamped(cursorless(r.stdout)))

	// Page by page with --json: each page's next_cursor starts the next.
	var v deadListView
	decode(t, f.env.ok(t, "", "dead", "list", "jobs", "--json", "--limit", "2"), &v)
	if v.Total != 5 || v.NextCursor == "" || !slices.Equal(deadIDs(v), []string{"e", "d"}) {
		t.Fatalf("first page: %+v", v)
	}
	decode(t, f.env.ok(t, "", "dead", "list", "jobs", "--json", "--limit", "2", "--cursor", v.NextCursor), &v)
	if v.Total != 5 || v.NextCursor == "" || !slices.Equal(deadIDs(v), []string{"c", "b"}) {
		t.Fatalf("second page: %+v", v)
	}
	c := v.DeadLetters[0]
	if c.Reason != string(mq.OutcomeDead) || c.Error != "timeout" || c.Attempts != 2 || fmt.Sprint(c.Content) != "[1 x]" ||
		c.FirstEnqueued == nil || c.Died.Before(*c.FirstEnqueued) || c.Queue != "jobs" {
		t.Errorf("c: %+v", c)
	}
	if b := v.DeadLetters[1]; b.Content != nil || b.DecodeError == "" || string(b.Data) != "not msgpack at all" {
		t.Errorf("undecodable b: %+v", b)
	}
	r = f.env.ok(t, "", "dead", "list", "jobs", "--cursor", v.NextCursor)
	if strings.Contains(r.stdout, "\x1b") || !strings.Contains(r.stdout, `"smtp: 550 no such user \x1b[31m: final"`) {
		t.Errorf("the escape byte of a's error reached the table:\n%q", r.stdout)
	}
	decode(t, f.env.ok(t, "", "dead", "list", "jobs", "--json", "--cursor", v.NextCursor), &v)
	if v.NextCursor != "" || !slices.Equal(deadIDs(v), []string{"a"}) {
		t.Errorf("last page: %+v", v)
	}
	// The JSON field names are the stable interface for scripts.
	r = f.env.ok(t, "", "dead", "list", "jobs", "--json", "--limit", "1")
	for _, name := range []string{`"total": 5`, `"cursor": ""`, `"next_cursor": "`, `"dead_letters": [`, `"id": "e"`,
		`"reason": "dead"`, `"error": "bad: final"`, `"attempts": 1`, `"first_enqueued": "`, `"died": "`, `"lock_time_ms": 0`, `"content": 5`} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("dead list --json: no %s in\n%s", name, r.stdout)
		}
	}
}

// cursorless replaces the cursor of a "next page" line, which holds a
// time of death, by a fixed one.
func cursorless(s string) string {
	return regexp.MustCompile(`--cursor \S+`).ReplaceAllString(s, "--cursor CURSOR")
}

func TestDeadShow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.bury(t, "emails", 10, finalAll("smtp: 550 \u202eno such user"),
		mq.EnqueueRequest{Message: map[string]any{"to": "ada@example.com", "n": 3},
			Options: &mq.EnqueueOptions{MessageID: "welcome", LockTime: 90 * time.Second}})
	f.bury(t, "emails", 10, finalAll("bad"), req("hostile", mq.Raw("\x91\xdb\xff\xff\xff\xf0 \x1b]0;pwned\x07")))

	r := f.env.ok(t, "", "dead", "show", "emails", "welcome")
	golden(t, "dead-show.txt", unstamped(r.stdout))
	// The message command says where a dead letter's message went.
	f.env.fails(t, exitNotFound, `message "welcome" is not in queue "emails" (it is a dead letter: mqctl dead show emails welcome)`, "", "message", "emails", "welcome")
	if strings.Contains(r.stdout, "\u202e") {
		t.Errorf("a bidi control of the error reached the terminal:\n%q", r.stdout)
	}
	var v deadView
	decode(t, f.env.ok(t, "", "dead", "show", "emails", "welcome", "--json"), &v)
	if v.ID != "welcome" || v.Error != "smtp: 550 \u202eno such user: final" || v.Attempts != 1 || v.LockTimeMS != 90000 ||
		fmt.Sprint(v.Content) != "map[n:3 to:ada@example.com]" || v.Size != 23 {
		t.Errorf("--json: %+v", v)
	}

	r = f.env.ok(t, "", "dead", "show", "emails", "hostile")
	if !strings.Contains(r.stdout, "undecodable: ") || strings.ContainsAny(r.stdout, "\x1b\x07") {
		t.Errorf("hostile dead letter:\n%q", r.stdout)
	}
	if r = f.env.ok(t, "", "dead", "show", "emails", "hostile", "--raw"); r.stdout != "\x91\xdb\xff\xff\xff\xf0 \x1b]0;pwned\x07" {
		t.Errorf("--raw wrote %q", r.stdout)
	}
	f.env.fails(t, exitNotFound, `no dead letter "nope" in queue "emails"`, "", "dead", "show", "emails", "nope")
}

func TestDeadRequeue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.bury(t, "q", 10, finalAll("bad"), req("a", "A"), req("b", "B"), req("c", "C"))
	// c's id is queued again meanwhile: its dead letter cannot be requeued.
	f.enqueue(t, "q", "c", "new C")

	r := f.env.ok(t, "", "dead", "requeue", "q", "a")
	if r.stdout != "requeued a of q\n" {
		t.Errorf("requeue a: %q", r.stdout)
	}
	if s, err := f.client.Inspector().MessageStatus(ctx, "q", "a"); err != nil || s != mq.StatusQueued {
		t.Errorf("requeued a: status %v, %v", s, err)
	}
	if _, err := f.client.Inspector().DeadLetter(ctx, "q", "a"); !errors.Is(err, mq.ErrNoDeadLetter) {
		t.Errorf("a's dead letter after its requeue: %v", err)
	}

	// A missing id exits 3, a kept one 4 (missing wins); the others are
	// requeued all the same.
	r = f.env.fails(t, exitNotFound, `1 of the dead letters named are not in queue "q"`, "", "dead", "requeue", "q", "c", "nope", "b", "--json")
	var v deadChangeView
	decode(t, r, &v)
	want := []deadResult{{"c", "kept"}, {"nope", "missing"}, {"b", "requeued"}}
	if v.Requeued != 1 || v.Kept != 1 || v.Missing != 1 || !slices.Equal(v.Results, want) {
		t.Errorf("--json: %+v", v)
	}
	if s, _ := f.client.Inspector().MessageStatus(ctx, "q", "b"); s != mq.StatusQueued {
		t.Errorf("b not requeued: %v", s)
	}
	r = f.env.fails(t, exitRefused, `1 dead letter(s) not requeued: queue "q" holds messages of their ids`, "", "dead", "requeue", "q", "c")
	if r.stdout != "kept c: q holds a message of that id\n" {
		t.Errorf("kept: %q", r.stdout)
	}
	if d, err := f.client.Inspector().DeadLetter(ctx, "q", "c"); err != nil || d.Error != "bad: final" {
		t.Errorf("c's dead letter: %+v, %v", d, err)
	}
}

// TestDeadRequeueAll requeues more dead letters than one call takes, with
// a question first and progress after each call.
func TestDeadRequeueAll(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reqs := make([]mq.EnqueueRequest, 150)
	for i := range reqs {
		reqs[i] = req(fmt.Sprintf("m%03d", i), i)
	}
	f.bury(t, "q", 10, finalAll("bad"), reqs...)
	f.enqueue(t, "q", "m007", "again") // kept

	for _, answer := range []string{"", "n\n"} {
		r := f.env.fails(t, exitFailure, "not confirmed", answer, "dead", "requeue", "q", "--all")
		if !strings.Contains(r.stderr, "Requeue all 150 dead letters of q? [y/N]") {
			t.Errorf("question: %q", r.stderr)
		}
		if c, _ := f.client.Inspector().QueueCounts(ctx, "q"); c.Dead != 150 {
			t.Fatalf("answer %q requeued: %d dead letters left", answer, c.Dead)
		}
	}

	r := f.env.fails(t, exitRefused, "1 dead letter(s) not requeued", "y\n", "dead", "requeue", "q", "--all")
	if r.stdout != "requeued 149 dead letters of q\nkept 1: the queue holds messages of their ids\n" {
		t.Errorf("requeue --all: %q", r.stdout)
	}
	// RequeueDeadLetters takes oldest first, 100 a call: the kept one is in
	// the first call.
	for _, want := range []string{"requeued 100/150 (1 kept)\n", "requeued 150/150 (1 kept)\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("no progress %q in stderr %q", want, r.stderr)
		}
	}
	c, err := f.client.Inspector().QueueCounts(ctx, "q")
	if err != nil || c.Dead != 1 || c.Queued != 150 {
		t.Errorf("after requeue --all: %+v, %v", c, err)
	}

	var v deadChangeView
	f.env.ok(t, "", "delete", "q", "m007")
	decode(t, f.env.ok(t, "", "dead", "requeue", "q", "--all", "--yes", "--json"), &v)
	if v.Queue != "q" || v.Requeued != 1 || v.Kept != 0 || v.Missing != 0 || v.Results != nil {
		t.Errorf("--json: %+v", v)
	}
	if r := f.env.ok(t, "", "dead", "requeue", "q", "--all"); r.stdout != "no dead letters in q\n" || r.stderr != "" {
		t.Errorf("nothing to requeue: %q %q", r.stdout, r.stderr)
	}
}

func TestDeadDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.bury(t, "q", 10, finalAll("bad"), req("a", 1), req("b", 2), req("c", 3), req("d", 4))
	dead := func() int64 {
		c, err := f.client.Inspector().QueueCounts(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		return c.Dead
	}

	if r := f.env.ok(t, "", "dead", "delete", "q", "a"); r.stdout != "deleted a of q\n" || dead() != 3 {
		t.Errorf("delete a: %q, %d left", r.stdout, dead())
	}
	r := f.env.fails(t, exitNotFound, "1 of the dead letters named are not in queue", "", "dead", "delete", "q", "a", "b")
	if r.stdout != "no dead letter a in q\ndeleted b of q\n" || dead() != 2 {
		t.Errorf("delete a b: %q, %d left", r.stdout, dead())
	}

	r = f.env.fails(t, exitFailure, "not confirmed", "no\n", "dead", "delete", "q", "--all")
	if !strings.Contains(r.stderr, "Delete all 2 dead letters of q, for good? [y/N]") || dead() != 2 {
		t.Errorf("refused: %q, %d left", r.stderr, dead())
	}
	var v deadChangeView
	decode(t, f.env.ok(t, "yes\n", "dead", "delete", "q", "--all", "--json"), &v)
	if v.Queue != "q" || v.Deleted != 2 || v.Requeued != 0 || v.Missing != 0 || v.Results != nil || dead() != 0 {
		t.Errorf("--json: %+v, %d left", v, dead())
	}
	if r := f.env.ok(t, "", "dead", "delete", "q", "--all"); r.stdout != "no dead letters in q\n" {
		t.Errorf("nothing to delete: %q", r.stdout)
	}
}

func TestDeadBadUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "q", "m", 1) // the queue exists: only the usage is wrong
	for _, c := range []struct {
		want string
		args []string
	}{
		{"list: want QUEUE, got 0", []string{"dead", "list"}},
		{"--limit must be from 1 to 1000", []string{"dead", "list", "q", "--limit", "0"}},
		{"--cursor \"-1\": not a cursor of a previous page", []string{"dead", "list", "q", "--cursor", "-1"}},
		{"show: want QUEUE ID, got 1", []string{"dead", "show", "q"}},
		{"requeue: want QUEUE ID... or QUEUE --all", []string{"dead", "requeue", "q"}},
		{"requeue: give IDs or --all, not both", []string{"dead", "requeue", "q", "a", "--all"}},
		{"delete: want QUEUE ID... or QUEUE --all", []string{"dead", "delete"}},
		{"invalid queue name", []string{"dead", "list", "bad*name"}},
		{"invalid message id", []string{"dead", "show", "q", "end-of-circle"}},
	} {
		f.env.fails(t, exitUsage, c.want, "", c.args...)
	}
}

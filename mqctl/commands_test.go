package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env.ok(t, "", "queues")
	if r := f.env.ok(t, "", "queues"); r.stdout != "no queues on redis://"+f.srv.Addr+"/0\n" {
		t.Errorf("empty Redis: %q", r.stdout)
	}
	// A dead letter, and a message done and kept in its dedupe window.
	f.bury(t, "emails", 10, func(m *mq.Message) error {
		if m.ID == "kept" {
			return mq.SucceedWithBackoff(time.Hour)
		}
		return final("bounced")
	}, req("bounced", "x"), req("kept", "y"))
	for i := range 3 {
		f.enqueue(t, "emails", fmt.Sprint("e", i), "hello")
	}
	f.enqueue(t, "sms", "s0", "hi")
	if _, err := f.client.Inspector().PauseQueue(context.Background(), "sms"); err != nil {
		t.Fatal(err)
	}

	// A queue whose every message became a dead letter has no messages
	// hash left, and is listed all the same.
	f.bury(t, "bounced", 10, finalAll("bad"), req("b1", 1), req("b2", 2))

	golden(t, "queues.txt", f.env.ok(t, "", "queues").stdout)

	var got []queueView
	decode(t, f.env.ok(t, "", "queues", "--json"), &got)
	want := []queueView{
		{Queue: "bounced", Dead: 2},
		{Queue: "emails", Queued: 3, Done: 1, Total: 4, Dead: 1},
		{Queue: "sms", Queued: 1, Total: 1, Paused: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("--json: %+v, want %+v", got, want)
	}
	// The JSON field names are the stable interface for scripts.
	r := f.env.ok(t, "", "queues", "--json", "sm*")
	for _, name := range []string{`"queue": "sms"`, `"queued": 1`, `"locked": 0`, `"backoff": 0`, `"done": 0`, `"total": 1`, `"dead": 0`, `"paused": true`} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("queues --json sm*: no %s in\n%s", name, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "emails") {
		t.Errorf("pattern sm* listed emails:\n%s", r.stdout)
	}
}

func TestShow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "emails", "welcome", map[string]any{"to": "ada@example.com", "n": 3})
	f.enqueue(t, "emails", "list", []any{1, 2.5, "x"})
	f.enqueue(t, "emails", "raw", mq.Raw("not json \x1b[31m red"))
	res, err := f.client.Enqueue(context.Background(), "emails", "later", &mq.EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour + 20*time.Second})
	if err != nil || !res.OK() {
		t.Fatal(err, res)
	}
	f.age2h(t, "emails", "welcome", "list", "raw", "later")

	r := f.env.ok(t, "", "show", "emails")
	// The backoff left counts down: rounded to minutes, it shows 1h0m0s
	// unless the test took 50 s to get here.
	golden(t, "show.txt", r.stdout)
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("raw escape byte reached the table:\n%q", r.stdout)
	}

	var v showView
	decode(t, f.env.ok(t, "", "show", "emails", "--json"), &v)
	if v.Queue != "emails" || v.Total != 4 || v.Backoff != 1 || len(v.Messages) != 4 || v.NextCursor != "" {
		t.Fatalf("--json: %+v", v)
	}
	byID := map[string]messageView{}
	for _, m := range v.Messages {
		byID[m.ID] = m
	}
	if got := byID["welcome"].Content; fmt.Sprint(got) != "map[n:3 to:ada@example.com]" {
		t.Errorf("welcome's content %v", got)
	}
	if m := byID["raw"]; m.Content != nil || !strings.Contains(m.DecodeError, "cannot decode") || string(m.Data) != "not json \x1b[31m red" {
		t.Errorf("raw message: %+v", m)
	}
	if m := byID["later"]; m.Status != "queued-with-backoff" || m.BackoffMS <= 0 || m.AgeMS < (2*time.Hour).Milliseconds() {
		t.Errorf("later: %+v", m)
	}
}

// TestShowPages reads a queue page by page, small (Redis answers the whole
// hash at once) and large (a real hash table, scanned in steps): every
// message comes exactly once, in pages of exactly --limit.
func TestShowPages(t *testing.T) {
	t.Parallel()
	for _, n := range []int{25, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			reqs := make([]mq.EnqueueRequest, n)
			var want []string
			for i := range reqs {
				id := fmt.Sprintf("m%03d", i)
				reqs[i] = mq.EnqueueRequest{Message: i, Options: &mq.EnqueueOptions{MessageID: id}}
				want = append(want, id)
			}
			if _, err := f.client.EnqueueMany(context.Background(), "q", reqs...); err != nil {
				t.Fatal(err)
			}
			var seen []messageView
			cursor, pages := "", 0
			for {
				var v showView
				decode(t, f.env.ok(t, "", "show", "q", "--limit", "10", "--cursor", cursor, "--json"), &v)
				pages++
				if v.NextCursor != "" && len(v.Messages) != 10 {
					t.Fatalf("page %d (cursor %q) holds %d messages, want 10", pages, cursor, len(v.Messages))
				}
				seen = append(seen, v.Messages...)
				if cursor = v.NextCursor; cursor == "" {
					break
				}
				if pages > n {
					t.Fatal("paging does not end")
				}
			}
			if got := ids(seen); !slices.Equal(got, want) {
				t.Fatalf("pages held %d messages (%d distinct), want each of %d once", len(seen), len(slices.Compact(got)), n)
			}
			if pages != (n+9)/10 {
				t.Errorf("%d pages for %d messages of 10 a page", pages, n)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "emails", "welcome", map[string]any{"to": "ada@example.com"})
	f.enqueue(t, "emails", "hostile", mq.Raw("\x91\xdb\xff\xff\xff\xf0 \x1b]0;pwned\x07"))
	f.enqueue(t, "emails", "bidi", "evil\u202ename\u009b31m")
	f.age2h(t, "emails", "welcome", "hostile", "bidi")

	golden(t, "message.txt", f.env.ok(t, "", "message", "emails", "welcome").stdout)

	r := f.env.ok(t, "", "message", "emails", "hostile")
	golden(t, "message-undecodable.txt", r.stdout)
	if !strings.Contains(r.stdout, "undecodable: ") || strings.ContainsAny(r.stdout, "\x1b\x07") {
		t.Errorf("hostile message:\n%q", r.stdout)
	}
	var v messageView
	decode(t, f.env.ok(t, "", "message", "emails", "hostile", "--json"), &v)
	if v.Content != nil || v.DecodeError == "" || v.Size != 17 || v.Status != "queued" {
		t.Errorf("hostile --json: %+v", v)
	}

	// A decoded string that would drive a terminal is escaped, in tables
	// and in JSON alike.
	for _, args := range [][]string{{"message", "emails", "bidi"}, {"message", "emails", "bidi", "--json"}, {"show", "emails"}} {
		r = f.env.ok(t, "", args...)
		if strings.ContainsAny(r.stdout, "\u202e\u009b") || !strings.Contains(r.stdout, `\u202e`) {
			t.Errorf("mqctl %v let a control character through:\n%q", args, r.stdout)
		}
	}

	if r = f.env.ok(t, "", "message", "emails", "hostile", "--raw"); r.stdout != "\x91\xdb\xff\xff\xff\xf0 \x1b]0;pwned\x07" {
		t.Errorf("--raw wrote %q", r.stdout)
	}

	r = f.env.fails(t, exitNotFound, `message "nope" is not in queue "emails"`, "", "message", "emails", "nope", "--json")
	decode(t, r, &v)
	if v.Status != "nil" {
		t.Errorf("missing message's status %q", v.Status)
	}
}

// TestMessageRequeue shows the content of a pending requeue beside the
// message a handler holds.
func TestMessageRequeue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.enqueue(t, "jobs", "j", "first")
	held, release := make(chan struct{}), make(chan struct{})
	w, err := f.client.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, _ *mq.Message) error {
			close(held)
			<-release
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	<-held
	defer close(release)
	f.env.ok(t, "", "enqueue", "jobs", "j", "--requeue", "-d", `"second"`)

	var v messageView
	decode(t, f.env.ok(t, "", "message", "jobs", "j", "--json"), &v)
	if v.Status != "locked-with-requeue" || v.Content != "first" || v.Requeue == nil || v.Requeue.Content != "second" || v.Attempts != 1 {
		t.Errorf("held message with a requeue: %+v (requeue %+v)", v, v.Requeue)
	}
	r := f.env.ok(t, "", "message", "jobs", "j")
	if !strings.Contains(r.stdout, "requeue content  \"second\"") {
		t.Errorf("no requeue content in\n%s", r.stdout)
	}
	// A page of the queue carries it too.
	f.enqueue(t, "jobs", "other", "plain")
	var page showView
	decode(t, f.env.ok(t, "", "show", "jobs", "--json"), &page)
	for _, m := range page.Messages {
		if m.ID == "j" && (m.Requeue == nil || m.Requeue.Content != "second") || m.ID == "other" && m.Requeue != nil {
			t.Errorf("show --json: %s: requeue %+v", m.ID, m.Requeue)
		}
	}
	if len(page.Messages) != 2 {
		t.Errorf("show --json: %d messages", len(page.Messages))
	}
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	stored := func(id string) []byte {
		t.Helper()
		m, err := f.client.Inspector().Message(ctx, "q", id)
		if err != nil || m.Status == mq.StatusNone {
			t.Fatalf("%s not stored: %v", id, err)
		}
		return m.Data
	}

	if r := f.env.ok(t, "", "enqueue", "q", "a", "--data", `{"to":"ada","n":3,"big":18446744073709551615,"f":1.5}`); r.stdout != "added a in q\n" {
		t.Errorf("enqueue: %q", r.stdout)
	}
	// JSON becomes MessagePack, integers as integers.
	var got map[string]any
	if err := (mq.MsgpackCodec{}).Unmarshal(stored("a"), &got); err != nil {
		t.Fatal(err)
	}
	if got["to"] != "ada" || got["n"] != int64(3) || got["big"] != uint64(18446744073709551615) || got["f"] != 1.5 {
		t.Errorf("stored %#v", got)
	}

	// From stdin, with a generated id, JSON output.
	var v enqueueView
	decode(t, f.env.ok(t, `["x", 1]`+"\n", "enqueue", "q", "--json"), &v)
	if v.Queue != "q" || v.Action != "added" || len(v.ID) != 36 || v.Refused != "" {
		t.Errorf("stdin enqueue: %+v", v)
	}
	var list []any
	if err := (mq.MsgpackCodec{}).Unmarshal(stored(v.ID), &list); err != nil || fmt.Sprint(list) != "[x 1]" {
		t.Errorf("stored %v, %v", list, err)
	}

	// Raw bytes, as they are.
	f.env.ok(t, "not json\x00\xff", "enqueue", "q", "raw", "--raw")
	if b := stored("raw"); string(b) != "not json\x00\xff" {
		t.Errorf("raw stored %q", b)
	}

	// Not JSON without --raw: nothing written.
	f.env.fails(t, exitFailure, "content is not one JSON value", "", "enqueue", "q", "bad", "-d", "{oops")
	f.env.fails(t, exitFailure, "more than one value", "", "enqueue", "q", "bad", "-d", "1 2")
	f.env.fails(t, exitFailure, "empty", "", "enqueue", "q", "bad")
	if s, _ := f.client.Inspector().MessageStatus(ctx, "q", "bad"); s != mq.StatusNone {
		t.Error("a refused content was written")
	}

	// A refusal exits 4, and says so in JSON too.
	r := f.env.fails(t, exitRefused, "refused message a: already queued", "", "enqueue", "q", "a", "-d", "1", "--json")
	decode(t, r, &v)
	if v.Refused != "already queued" || v.Action != "" {
		t.Errorf("refusal: %+v", v)
	}
	if r = f.env.ok(t, "", "enqueue", "q", "a", "-d", `"new"`, "--update"); r.stdout != "updated a in q\n" {
		t.Errorf("update: %q", r.stdout)
	}

	// Options reach the library.
	f.env.ok(t, "", "enqueue", "q", "later", "-d", "1", "--backoff", "1h", "--lock-time", "5s")
	if s, err := f.client.Inspector().MessageStatus(ctx, "q", "later"); err != nil || s != mq.StatusQueuedWithBackoff {
		t.Errorf("--backoff: status %v, %v", s, err)
	}
	if m, err := f.client.Inspector().Message(ctx, "q", "later"); err != nil || m.LockTime != 5*time.Second {
		t.Errorf("--lock-time: %v, %v", m.LockTime, err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "q", "a", 1)
	if r := f.env.ok(t, "", "delete", "q", "a"); r.stdout != "deleted a from q\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	if s, _ := f.client.Inspector().MessageStatus(context.Background(), "q", "a"); s != mq.StatusNone {
		t.Errorf("deleted message's status %v", s)
	}
	r := f.env.fails(t, exitNotFound, `message "a" is not in queue "q"`, "", "delete", "q", "a", "--json")
	var v deleteView
	decode(t, r, &v)
	if v != (deleteView{Queue: "q", ID: "a", Deleted: false}) {
		t.Errorf("--json: %+v", v)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.enqueue(t, "q", "a", 1)
	paused := func() bool {
		c, err := f.client.Inspector().QueueCounts(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		return c.Paused
	}
	if r := f.env.ok(t, "", "pause", "q"); r.stdout != "q is paused\n" || !paused() {
		t.Errorf("pause: %q, paused %v", r.stdout, paused())
	}
	var v pauseView
	decode(t, f.env.ok(t, "", "pause", "q", "--json"), &v)
	if v != (pauseView{Queue: "q", Paused: true, Changed: false}) {
		t.Errorf("second pause: %+v", v)
	}
	if r := f.env.ok(t, "", "resume", "q"); r.stdout != "q is running\n" || paused() {
		t.Errorf("resume: %q, paused %v", r.stdout, paused())
	}
	if r := f.env.ok(t, "", "resume", "q"); r.stdout != "q was running already\n" {
		t.Errorf("second resume: %q", r.stdout)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	names := func() []string {
		n, err := f.client.Inspector().QueueNames(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, q := range []string{"a", "b", "c"} {
		f.enqueue(t, q, "m", 1)
	}

	// Anything but yes refuses, and changes nothing.
	for _, answer := range []string{"", "n\n", "no\n", "yess\n"} {
		r := f.env.fails(t, exitFailure, "not confirmed", answer, "clear", "a", "b")
		if !strings.Contains(r.stderr, "Delete every key of 2 queue(s), for good: a, b? [y/N]") {
			t.Errorf("question: %q", r.stderr)
		}
		if got := names(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("answer %q cleared: %v left", answer, got)
		}
	}

	r := f.env.ok(t, "yes\n", "clear", "a", "b", "nothing-here")
	if r.stdout != "cleared a\ncleared b\nnothing-here held nothing\n" {
		t.Errorf("clear: %q", r.stdout)
	}
	for i, q := range []string{"a", "b", "nothing-here"} {
		if want := fmt.Sprintf("cleared %d/3: %s\n", i+1, q); !strings.Contains(r.stderr, want) {
			t.Errorf("no progress %q in stderr %q", want, r.stderr)
		}
	}
	if got := names(); !slices.Equal(got, []string{"c"}) {
		t.Errorf("left %v", got)
	}

	f.enqueue(t, "d", "m", 1)
	f.bury(t, "e", 10, finalAll("bad"), req("m", 1)) // dead letters alone
	var v clearView
	decode(t, f.env.ok(t, "", "clear", "--all", "--yes", "--json"), &v)
	if !slices.Equal(v.Cleared, []string{"c", "d", "e"}) || len(v.Empty) != 0 {
		t.Errorf("clear --all: %+v", v)
	}
	if got := names(); len(got) != 0 {
		t.Errorf("left %v", got)
	}
	if c, _ := f.client.Inspector().QueueCounts(ctx, "e"); c.Dead != 0 {
		t.Errorf("clear --all left %d dead letters in e", c.Dead)
	}
	if r := f.env.ok(t, "", "clear", "--all"); !strings.HasPrefix(r.stdout, "no queues on ") {
		t.Errorf("clear --all of nothing: %q", r.stdout)
	}
}

func TestBadUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "q", "a", 1)
	for _, c := range []struct {
		want string
		args []string
	}{
		{`unknown command "bogus"`, []string{"bogus"}},
		{"unknown flag: --nope", []string{"queues", "--nope"}},
		{"show: want QUEUE, got 0", []string{"show"}},
		{"message: want QUEUE ID, got 1", []string{"message", "q"}},
		{"delete: want QUEUE ID, got 3", []string{"delete", "q", "a", "b"}},
		{`invalid argument "x" for "--limit"`, []string{"show", "q", "--limit", "x"}},
		{"--limit must be from 1 to 1000", []string{"show", "q", "--limit", "0"}},
		{"--limit must be from 1 to 1000", []string{"show", "q", "--limit", "1001"}},
		{`--cursor "x.y": not a cursor`, []string{"show", "q", "--cursor", "x.y"}},
		{"invalid queue name", []string{"show", "bad*name"}},
		{"invalid message id", []string{"message", "q", "end-of-circle"}},
		{"invalid option", []string{"enqueue", "q", "-d", "1", "--backoff", "-1s"}},
		{"give QUEUE names or --all, not both", []string{"clear", "q", "--all"}},
		{"want QUEUE... or --all", []string{"clear"}},
		{"--sentinel needs --master NAME", []string{"--sentinel", "127.0.0.1:1", "queues"}},
		{"--master needs --sentinel", []string{"--master", "m", "queues"}},
		{"--cluster and --sentinel exclude each other", []string{"--cluster", "127.0.0.1:1", "--sentinel", "127.0.0.1:2", "--master", "m", "queues"}},
		{"--tls-cert and --tls-key go together", []string{"--tls-cert", "x.pem", "queues"}},
		{"--tls-ca: open /nonexistent", []string{"--tls-ca", "/nonexistent", "queues"}},
		{`Redis URL "http://x"`, []string{"--url", "http://x", "queues"}},
		{`invalid argument "soon" for "--timeout"`, []string{"--timeout", "soon", "queues"}},
	} {
		r := f.env.fails(t, exitUsage, c.want, "", c.args...)
		if !strings.Contains(r.stderr, "Run 'mqctl --help' for usage.") {
			t.Errorf("mqctl %v: no pointer to the help in %q", c.args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("mqctl %v wrote %q on stdout", c.args, r.stdout)
		}
	}
	// A bad value from the environment is a usage error too.
	bad := env{"REDIS_URL": f.env["REDIS_URL"], "MQCTL_TIMEOUT": "soon"}
	bad.fails(t, exitUsage, `MQCTL_TIMEOUT="soon"`, "", "queues")
}

// TestUnreachable: a Redis that is not there is one clear line and exit 1.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A port nothing listens on: the test's own server, stopped.
	f.srv.Kill(t)
	r := f.env.fails(t, exitFailure, "connection refused", "", "queues")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("more than one line: %q", r.stderr)
	}
}

func TestSchedules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := f.client.Inspector()
	// A queue that does not exist is refused (TestUnknownQueue), not
	// listed as one without schedules.
	f.env.fails(t, exitNotFound, `no such queue: "q"`, "", "schedules", "list", "q")
	if _, err := in.SetSchedule(ctx, "q", mq.Schedule{Name: "nightly", Cron: "0 3 * * *", Zone: "Europe/Paris", Message: mq.Raw("go")}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.SetSchedule(ctx, "q", mq.Schedule{Name: "often", Every: time.Minute, Message: mq.Raw("x")}); err != nil {
		t.Fatal(err)
	}
	r := f.env.ok(t, "", "schedules", "list", "q")
	for _, want := range []string{"NAME", "nightly", `"0 3 * * *"`, "Europe/Paris", "often", "every 1m0s", `"go"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("schedules list: no %s in\n%s", want, r.stdout)
		}
	}
	if r := f.env.ok(t, "", "schedules", "pause", "q", "often"); r.stdout != "schedule often of q is paused\n" {
		t.Errorf("pause: %q", r.stdout)
	}
	if r := f.env.ok(t, "", "schedules", "pause", "q", "often"); r.stdout != "schedule often of q was paused already\n" {
		t.Errorf("second pause: %q", r.stdout)
	}
	var views []scheduleView
	decode(t, f.env.ok(t, "", "schedules", "list", "q", "--json"), &views)
	if len(views) != 2 || views[1].Name != "often" || !views[1].Paused || views[1].Next != nil || views[0].Next == nil ||
		views[0].Next.In(mustZone(t, "Europe/Paris")).Hour() != 3 || string(views[0].Message) != "go" {
		t.Errorf("--json: %+v", views)
	}
	if r := f.env.ok(t, "", "schedules", "resume", "q", "often"); r.stdout != "schedule often of q is running\n" {
		t.Errorf("resume: %q", r.stdout)
	}
	f.env.ok(t, "", "schedules", "delete", "q", "often")
	f.env.fails(t, exitNotFound, "no schedule", "", "schedules", "delete", "q", "often")
	f.env.fails(t, exitNotFound, "no schedule", "", "schedules", "pause", "q", "often")
	list, err := in.Schedules(ctx, "q")
	if err != nil || len(list) != 1 || list[0].Name != "nightly" {
		t.Errorf("after delete: %+v, %v", list, err)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

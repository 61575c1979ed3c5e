package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// deadPage answers GET api/dead?query, which must succeed.
func deadPage(t *testing.T, srv *httptest.Server, query string) deadPageJSON {
	t.Helper()
	code, body := get(t, srv, "/mq/api/dead?"+query)
	if code != http.StatusOK {
		t.Fatalf("dead %s: %d %s", query, code, body)
	}
	return decodeJSON[deadPageJSON](t, body)
}

// TestDeadLettersAPI: the dead letters a real worker made (its handler
// failing with mq.Final) are listed page by page with their error, their
// content as text, and counted in the overview; hostile content holds no
// markup in the JSON.
func TestDeadLettersAPI(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	msgs := map[string]any{}
	for i := range 5 {
		msgs[fmt.Sprintf("d%d", i)] = map[string]any{"n": i}
	}
	for i, h := range hostile {
		msgs[fmt.Sprintf("<b id=%d>", i)] = h
	}
	bury(t, c, "q", msgs)
	// Named: QueueNames does not find a queue that holds dead letters
	// alone (see the README).
	srv := serve(t, c, Options{Queues: []string{"q"}})

	q := findQueue(t, overviewOf(t, srv), "q")
	if q.Counts == nil || q.Counts.Dead != 8 || q.Counts.Total != 0 || len(q.History) != 1 || q.History[0].Dead != 8 {
		t.Fatalf("overview of a queue of dead letters: %+v %+v (%s)", q.Counts, q.History, q.Error)
	}

	seen := map[string]deadJSON{}
	cursor, pages := "", 0
	for {
		p := deadPage(t, srv, "queue=q&limit=3&cursor="+cursor)
		if p.Total != 8 || len(p.Letters) > 3 {
			t.Fatalf("page %+v", p)
		}
		for _, d := range p.Letters {
			if _, dup := seen[d.ID]; dup {
				t.Fatalf("%s twice", d.ID)
			}
			seen[d.ID] = d
		}
		pages++
		if cursor = p.Cursor; cursor == "" {
			break
		}
	}
	if len(seen) != 8 || pages != 3 {
		t.Fatalf("%d dead letters in %d pages", len(seen), pages)
	}
	d := seen["d3"]
	if d.Error != "cannot handle d3" || d.Reason != string(mq.OutcomeDead) || d.Attempts != 1 || d.DiedMS <= 0 || d.FirstEnqueuedMS <= 0 ||
		d.DecodeError != "" || !strings.Contains(d.Content, `"n": 3`) || d.Size == 0 {
		t.Errorf("dead letter d3: %+v", d)
	}
	if d := seen["<b id=0>"]; d.Content != `"<img src=x onerror=\"window.__pwned=1\">"` || d.Error != "cannot handle <b id=0>" {
		t.Errorf("a hostile dead letter, kept as text: %+v", d)
	}
	if d := seen["<b id=2>"]; d.DecodeError == "" || d.Content != `"\xff\xfe<script>window.__pwned=4</script>"` {
		t.Errorf("undecodable bytes, shown as such: %+v", d)
	}
	_, body := get(t, srv, "/mq/api/dead?queue=q&limit=100")
	for _, bad := range []string{"<", ">"} {
		if strings.Contains(body, bad) {
			t.Errorf("the JSON holds a raw %q: %s", bad, body)
		}
	}

	if p := deadPage(t, srv, "queue=none"); p.Total != 0 || len(p.Letters) != 0 || p.Cursor != "" {
		t.Errorf("a queue without dead letters: %+v", p)
	}
	for _, bad := range []string{"queue=a*", "queue=q&cursor=x", "queue=q&cursor=-1", "queue=q&limit=0", ""} {
		if code, body := get(t, srv, "/mq/api/dead?"+bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestDeadLetterActions: requeue and delete, one or all, change the dead
// letters and the queue in Redis; a dead letter whose id the queue holds
// again is kept, as a conflict.
func TestDeadLetterActions(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	msgs := map[string]any{}
	for i := range 6 {
		msgs[fmt.Sprintf("d%d", i)] = fmt.Sprintf("content %d", i)
	}
	bury(t, c, "q", msgs)
	srv := serve(t, c, Options{AllowActions: true})
	isDead := func(id string) bool {
		t.Helper()
		_, err := c.Inspector().DeadLetter(ctx, "q", id)
		if err != nil && !errors.Is(err, mq.ErrNoDeadLetter) {
			t.Fatal(err)
		}
		return err == nil
	}
	status := func(id string) mq.MessageStatus {
		t.Helper()
		st, err := c.Inspector().MessageStatus(ctx, "q", id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	act := func(path, body string, wantCode int) actionResult {
		t.Helper()
		code, resp := post(t, srv, "/mq/api/dead/"+path, body, nil)
		if code != wantCode {
			t.Fatalf("%s %s: %d %s", path, body, code, resp)
		}
		if code != http.StatusOK {
			return actionResult{}
		}
		return decodeJSON[actionResult](t, resp)
	}

	// Requeue one: a fresh message under its id, its dead letter gone.
	if r := act("requeue", `{"queue":"q","id":"d0"}`, http.StatusOK); r != (actionResult{Changed: true, Count: 1}) {
		t.Errorf("requeue d0: %+v", r)
	}
	if isDead("d0") || status("d0") != mq.StatusQueued {
		t.Fatalf("d0 after its requeue: dead %v, status %s", isDead("d0"), status("d0"))
	}
	if r := act("requeue", `{"queue":"q","id":"d0"}`, http.StatusOK); r.Changed {
		t.Errorf("requeue of no dead letter: %+v", r)
	}

	// The queue holds d1 again: its requeue is refused and keeps it.
	if _, err := c.Enqueue(ctx, "q", "again", &mq.EnqueueOptions{MessageID: "d1"}); err != nil {
		t.Fatal(err)
	}
	act("requeue", `{"queue":"q","id":"d1"}`, http.StatusConflict)
	if !isDead("d1") {
		t.Fatal("a refused requeue lost the dead letter")
	}

	// Delete one.
	if r := act("delete", `{"queue":"q","id":"d2"}`, http.StatusOK); r != (actionResult{Changed: true, Count: 1}) {
		t.Errorf("delete d2: %+v", r)
	}
	if isDead("d2") || status("d2") != mq.StatusNone {
		t.Fatal("d2 after its delete")
	}
	if r := act("delete", `{"queue":"q","id":"d2"}`, http.StatusOK); r.Changed {
		t.Errorf("delete of no dead letter: %+v", r)
	}

	// Neither one nor all, or both, is refused and changes nothing.
	act("requeue", `{"queue":"q"}`, http.StatusBadRequest)
	act("delete", `{"queue":"q","id":"d3","all":true}`, http.StatusBadRequest)
	if !isDead("d3") {
		t.Fatal("a refused delete deleted")
	}

	// Requeue all: d3, d4, d5 come back; d1 stays.
	if r := act("requeue", `{"queue":"q","all":true}`, http.StatusOK); r != (actionResult{Changed: true, Count: 3, Kept: 1}) {
		t.Errorf("requeue all: %+v", r)
	}
	for _, id := range []string{"d3", "d4", "d5"} {
		if isDead(id) || status(id) != mq.StatusQueued {
			t.Errorf("%s after requeue all: status %s", id, status(id))
		}
	}
	if !isDead("d1") {
		t.Error("requeue all dropped the dead letter it kept")
	}

	// Delete all.
	if r := act("delete", `{"queue":"q","all":true}`, http.StatusOK); r != (actionResult{Changed: true, Count: 1}) {
		t.Errorf("delete all: %+v", r)
	}
	n, err := c.Inspector().QueueCounts(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if n.Dead != 0 || n.Total != 5 {
		t.Errorf("after delete all: %+v", n)
	}
}

package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/queuetest"
)

func overviewNames(t *testing.T, ov overviewJSON) []string {
	t.Helper()
	var names []string
	for _, q := range ov.Queues {
		names = append(names, q.Name)
	}
	return names
}

// TestQueueListFollowsRegistry: the overview lists a queue with a running
// worker and nothing in it, and drops a cleared queue at its next read,
// within the RefreshQueues the scan is reused for (it showed it, with
// zeros, until the dashboard restarted).
func TestQueueListFollowsRegistry(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	for _, q := range []string{"emails", "sms"} {
		if _, err := c.Enqueue(ctx, q, "x", nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.StartWorker(ctx, "idle", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	queuetest.WaitFor(t, "the worker's queue registered", func() bool {
		ok, err := c.Inspector().QueueExists(ctx, "idle")
		return err == nil && ok
	})
	srv := serve(t, c, Options{}) // RefreshQueues: 10 s
	if got := overviewNames(t, overviewOf(t, srv)); !slices.Equal(got, []string{"emails", "idle", "sms"}) {
		t.Fatalf("queues %v", got)
	}
	if _, err := c.Inspector().ClearQueues(ctx, "sms"); err != nil {
		t.Fatal(err)
	}
	if got := overviewNames(t, overviewOf(t, srv)); !slices.Equal(got, []string{"emails", "idle"}) {
		t.Fatalf("after clearing sms: %v", got)
	}
	if got := overviewNames(t, overviewOf(t, srv)); !slices.Equal(got, []string{"emails", "idle"}) {
		t.Fatalf("the read after: %v", got)
	}
}

// TestPauseUnknownQueue: the pause API refuses a queue that does not
// exist with 404 and creates nothing, unless asked to create it; resume
// refuses it too.
func TestPauseUnknownQueue(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "emails", "x", nil); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{AllowActions: true})
	overviewOf(t, srv) // the names are read, and reused for 10 s
	for _, path := range []string{"/mq/api/pause", "/mq/api/resume"} {
		if code, resp := post(t, srv, path, `{"queue":"emials"}`, nil); code != http.StatusNotFound {
			t.Errorf("%s of a typo: %d %s", path, code, resp)
		}
	}
	if names, _ := c.Inspector().QueueNames(ctx, ""); !slices.Equal(names, []string{"emails"}) {
		t.Fatalf("the refusals created queues: %v", names)
	}
	code, resp := post(t, srv, "/mq/api/pause", `{"queue":"later","create":true}`, nil)
	if code != http.StatusOK || decodeJSON[actionResult](t, resp) != (actionResult{Changed: true}) {
		t.Fatalf("pause with create: %d %s", code, resp)
	}
	if got := overviewNames(t, overviewOf(t, srv)); !slices.Equal(got, []string{"emails", "later"}) {
		t.Errorf("after a pause that created a queue: %v", got)
	}
	if code, resp := post(t, srv, "/mq/api/resume", `{"queue":"later","create":true}`, nil); code != http.StatusBadRequest {
		t.Errorf("resume with create: %d %s", code, resp)
	}
	if code, resp := post(t, srv, "/mq/api/resume", `{"queue":"later"}`, nil); code != http.StatusOK {
		t.Errorf("resume: %d %s", code, resp)
	}
}

// TestMessageUnknownQueue: api/message and api/delete of an id in a queue
// that does not exist answer 404 saying the queue does not exist, not
// that the message is not in it (which reads as a message handled and
// gone); an id not in a queue that exists still answers as before.
func TestMessageUnknownQueue(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "emails", "x", nil); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{AllowActions: true})
	code, body := get(t, srv, "/mq/api/message?queue=emials&id=x")
	if code != http.StatusNotFound || !strings.Contains(body, `no such queue: \"emials\"`) {
		t.Errorf("message in a typo: %d %s", code, body)
	}
	code, body = post(t, srv, "/mq/api/delete", `{"queue":"emials","id":"x"}`, nil)
	if code != http.StatusNotFound || !strings.Contains(body, `no such queue: \"emials\"`) {
		t.Errorf("delete in a typo: %d %s", code, body)
	}
	code, body = get(t, srv, "/mq/api/schedules?queue=emials")
	if code != http.StatusNotFound || !strings.Contains(body, `no such queue: \"emials\"`) {
		t.Errorf("schedules of a typo: %d %s", code, body)
	}
	if code, body = get(t, srv, "/mq/api/schedules?queue=emails"); code != http.StatusOK {
		t.Errorf("schedules of a queue that exists: %d %s", code, body)
	}
	code, body = get(t, srv, "/mq/api/message?queue=emails&id=nope")
	if code != http.StatusNotFound || decodeJSON[oneMessageJSON](t, body).Status != "nil" {
		t.Errorf("message not in a queue that exists: %d %s", code, body)
	}
	code, body = post(t, srv, "/mq/api/delete", `{"queue":"emails","id":"nope"}`, nil)
	if code != http.StatusOK || decodeJSON[actionResult](t, body) != (actionResult{}) {
		t.Errorf("delete not in a queue that exists: %d %s", code, body)
	}
	if names, _ := c.Inspector().QueueNames(ctx, ""); !slices.Equal(names, []string{"emails"}) {
		t.Errorf("queues: %v", names)
	}
}

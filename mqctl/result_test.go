package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

func TestResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.enqueue(t, "rpc", "ask", "question")
	f.env.fails(t, exitNotFound, `no result of "ask" in queue "rpc" yet: the message is pending`, "", "result", "rpc", "ask")
	f.env.fails(t, exitNotFound, `no result of "ask" in queue "rpc" yet`, "", "result", "rpc", "ask", "--wait", "50ms")

	w, err := f.client.StartWorker(ctx, "rpc", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			return m.SetResult(map[string]any{"answer": 42})
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	r := f.env.ok(t, "", "result", "rpc", "ask", "--wait", "1m")
	for _, want := range []string{"recorded", "answer", "42"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in\n%s", want, r.stdout)
		}
	}
	var v resultView
	decode(t, f.env.ok(t, "", "result", "rpc", "ask", "--json"), &v)
	if v.ID != "ask" || v.At.IsZero() || fmt.Sprint(v.Content) != "map[answer:42]" {
		t.Errorf("--json: %+v", v)
	}
	f.env.fails(t, exitNotFound, `no result of "nope" in queue "rpc"`, "", "result", "rpc", "nope")
}

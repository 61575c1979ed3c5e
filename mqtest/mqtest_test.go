package mqtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/mqtest"
)

type order struct {
	Item string `msgpack:"item"`
	N    int    `msgpack:"n"`
}

func enqueue(t *testing.T, c *mq.Client, q string, msg any, opts *mq.EnqueueOptions) {
	t.Helper()
	if _, err := c.Enqueue(context.Background(), q, msg, opts); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// goid answers the id of the calling goroutine.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return string(bytes.Fields(buf)[1])
}

func TestDrainOutcomes(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "ok", &mq.EnqueueOptions{MessageID: "ok"})
	enqueue(t, c, "q", "dead", &mq.EnqueueOptions{MessageID: "dead", MaxAttempts: 1})
	enqueue(t, c, "q", "retry", &mq.EnqueueOptions{MessageID: "retry"})
	enqueue(t, c, "q", "fail", &mq.EnqueueOptions{MessageID: "fail"})

	me := goid()
	var elsewhere []string
	h := mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
		if g := goid(); g != me {
			elsewhere = append(elsewhere, m.ID+" on goroutine "+g)
		}
		switch m.ID {
		case "ok":
			return nil
		case "retry":
			return mq.Retry(time.Hour)
		}
		return errors.New("boom")
	})
	// A retry backoff of an hour, so that a slow machine does not hand the
	// failed message out again.
	res, err := mqtest.DrainWith(context.Background(), c, "q", mq.WorkerConfig{Handler: h, RetryBackoff: mq.Constant(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(elsewhere) > 0 {
		t.Errorf("handler ran off the draining goroutine %s: %v", me, elsewhere)
	}
	for o, want := range map[mq.Outcome]string{
		mq.OutcomeSucceeded: "ok", mq.OutcomeDead: "dead", mq.OutcomeRetried: "retry", mq.OutcomeFailed: "fail",
	} {
		if got := res.IDs(o); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, want [%s]", o, got, want)
		}
	}
	if len(res.Handlings) != 4 {
		t.Errorf("%d handlings, want 4: %+v", len(res.Handlings), res.Handlings)
	}

	// The outcomes are in Redis: the retried and failed messages wait out
	// their backoff, the success is gone, the dead one is a dead letter.
	msgs := mqtest.RequireEnqueued(t, c, "q",
		mqtest.Want{ID: "retry", InBackoff: true, Status: mq.StatusQueuedWithBackoff},
		mqtest.Want{ID: "fail", Value: "fail", InBackoff: true})
	if msgs[0].Attempts != 1 || msgs[1].Attempts != 1 {
		t.Errorf("attempts %d, %d, want 1, 1", msgs[0].Attempts, msgs[1].Attempts)
	}
	if n := len(mqtest.Enqueued(t, c, "q")); n != 2 {
		t.Errorf("queue holds %d messages, want 2", n)
	}
	if _, err := c.Inspector().DeadLetter(context.Background(), "q", "dead"); err != nil {
		t.Errorf("dead letter: %v", err)
	}
}

func TestDrainRunsRetriesDueAtOnce(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", order{"tea", 2}, nil)
	res, err := mqtest.Drain(context.Background(), c, "q", mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
		if m.Attempt == 1 {
			return mq.Retry(0)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(mq.OutcomeRetried) != 1 || res.Count(mq.OutcomeSucceeded) != 1 || len(res.Handlings) != 2 {
		t.Errorf("handlings %+v, want one retry then one success", res.Handlings)
	}
	mqtest.RequireEmpty(t, c, "q")
}

func TestDrainLeavesDelayed(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "later", &mq.EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour})
	enqueue(t, c, "q", "now", nil)
	res, err := mqtest.Drain(context.Background(), c, "q", mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Handlings) != 1 || res.Handlings[0].ID == "later" {
		t.Errorf("handlings %+v, want the ready message's alone", res.Handlings)
	}
	mqtest.RequireEnqueued(t, c, "q", mqtest.Want{ID: "later", InBackoff: true})
}

func TestDrainPanicIsAnError(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "x", &mq.EnqueueOptions{MaxAttempts: 1})
	res, err := mqtest.Drain(context.Background(), c, "q", mq.HandlerFunc(func(context.Context, *mq.Message) error { panic("oops") }))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Handlings) != 1 || res.Handlings[0].Outcome != mq.OutcomeDead ||
		res.Handlings[0].Err == nil || !strings.Contains(res.Handlings[0].Err.Error(), "oops") {
		t.Errorf("handlings %+v, want one dead with the panic", res.Handlings)
	}
}

func TestDrainEndsWithContext(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "x", nil)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := mqtest.Drain(ctx, c, "q", mq.HandlerFunc(func(context.Context, *mq.Message) error {
		cancel()
		return mq.Retry(0) // forever, but for ctx
	}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	if len(res.Handlings) == 0 {
		t.Error("no handling recorded")
	}
}

// fakeTB records a failure and ends its goroutine, as testing.T does.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs fn with a fakeTB and answers its failure message, "" if none.
func fails(fn func(tb testing.TB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestRequireEnqueued(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", order{"tea", 2}, &mq.EnqueueOptions{
		MessageID: "o1", Metadata: map[string]string{"tenant": "a", "trace": "t1"},
		Priority: mq.PriorityHigh, MaxAttempts: 3,
	})
	enqueue(t, c, "q", order{"tea", 2}, &mq.EnqueueOptions{MessageID: "o2"})
	enqueue(t, c, "q", mq.Raw("raw bytes"), &mq.EnqueueOptions{MessageID: "r"})

	got := mqtest.RequireEnqueued(t, c, "q",
		mqtest.Want{Value: order{"tea", 2}, Metadata: map[string]string{"tenant": "a"},
			Priority: mq.PriorityHigh, Policy: &mq.Policy{MaxAttempts: 3}},
		mqtest.Want{Value: order{"tea", 2}},
		mqtest.Want{Value: mq.Raw("raw bytes")})
	if got[0].ID != "o1" || got[1].ID != "o2" || got[2].ID != "r" {
		t.Errorf("matched %s, %s, %s, want o1, o2, r", got[0].ID, got[1].ID, got[2].ID)
	}

	for name, w := range map[string]mqtest.Want{
		"value":    {ID: "o2", Value: order{"tea", 3}},
		"priority": {ID: "o2", Priority: mq.PriorityHigh},
		"metadata": {ID: "o1", Priority: mq.PriorityHigh, Metadata: map[string]string{"tenant": "b"}},
		"policy":   {ID: "o1", Priority: mq.PriorityHigh, Policy: &mq.Policy{MaxAttempts: 4}},
		"backoff":  {ID: "o2", InBackoff: true},
		"id":       {ID: "o3"},
		"raw":      {Value: mq.Raw("other bytes")},
		"status":   {ID: "o2", Status: mq.StatusLocked},
	} {
		msg := fails(func(tb testing.TB) { mqtest.RequireEnqueued(tb, c, "q", w) })
		if !strings.Contains(msg, "holds no message matching") {
			t.Errorf("%s: want %s passed (%q)", name, w, msg)
		}
	}
	// Each message matches one want at most.
	msg := fails(func(tb testing.TB) {
		mqtest.RequireEnqueued(tb, c, "q", mqtest.Want{ID: "o2"}, mqtest.Want{ID: "o2"})
	})
	if !strings.Contains(msg, "matched an earlier want") {
		t.Errorf("one message matched two wants (%q)", msg)
	}
	if msg := fails(func(tb testing.TB) { mqtest.RequireEmpty(tb, c, "q") }); !strings.Contains(msg, "holds 3 messages") {
		t.Errorf("RequireEmpty passed on a queue of 3 (%q)", msg)
	}
}

func TestDrainHandlesWhatHandlersEnqueue(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", 1, nil)
	res, err := mqtest.Drain(context.Background(), c, "q", mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
		var n int
		if err := m.Decode(&n); err != nil {
			return err
		}
		if n < 5 {
			_, err := c.Enqueue(ctx, "q", n+1, nil)
			return err
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Count(mq.OutcomeSucceeded); n != 5 {
		t.Errorf("%d succeeded, want the chain of 5: %+v", n, res.Handlings)
	}
	mqtest.RequireEmpty(t, c, "q")
}

// jsonCodec is a codec other than the default, to show that wants are
// read with the client's own.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func TestRequireEnqueuedWithClientCodec(t *testing.T) {
	c := mqtest.NewWith(t, &mq.Config{Codec: jsonCodec{}})
	enqueue(t, c, "q", order{"tea", 2}, nil)
	got := mqtest.RequireEnqueued(t, c, "q", mqtest.Want{Value: order{"tea", 2}})
	if string(got[0].Data) != `{"Item":"tea","N":2}` {
		t.Errorf("stored %s, want JSON", got[0].Data)
	}
}

// A handler that ends the draining goroutine (t.FailNow, say) leaves no
// worker running: Drain closes it on the way out.
func TestDrainClosesWorkerWhenHandlerEndsGoroutine(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "x", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = mqtest.Drain(context.Background(), c, "q", mq.HandlerFunc(func(context.Context, *mq.Message) error {
			runtime.Goexit()
			return nil
		}))
	}()
	<-done
	ws, err := c.Inspector().Workers(context.Background(), "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 0 {
		t.Errorf("%d workers still running after the handler ended Drain's goroutine", len(ws))
	}
}

func TestEndBackoffs(t *testing.T) {
	c := mqtest.New(t)
	ctx := context.Background()
	enqueue(t, c, "q", order{"tea", 1}, &mq.EnqueueOptions{MessageID: "later", InitialBackoff: time.Hour,
		Metadata: map[string]string{"k": "v"}, Priority: mq.PriorityHigh, MaxAttempts: 3})
	enqueue(t, c, "q", "flaky", &mq.EnqueueOptions{MessageID: "flaky"})
	enqueue(t, c, "q", "done", &mq.EnqueueOptions{MessageID: "done"})
	h := mq.HandlerFunc(func(_ context.Context, m *mq.Message) error {
		switch {
		case m.ID == "flaky" && m.Attempt < 3:
			return errors.New("not yet")
		case m.ID == "done":
			return mq.SucceedWithBackoff(time.Hour) // a dedupe window: left alone
		}
		return nil
	})
	cfg := mq.WorkerConfig{Handler: h, RetryBackoff: mq.Constant(time.Hour)}
	drain := func() mqtest.Result {
		t.Helper()
		res, err := mqtest.DrainWith(ctx, c, "q", cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	if res := drain(); len(res.Handlings) != 2 { // flaky fails, done succeeds
		t.Errorf("round 1: %+v, want 2 handlings", res.Handlings)
	}
	if n := mqtest.EndBackoffs(t, c, "q"); n != 2 {
		t.Errorf("round 1 ended %d backoffs, want 2 (later, flaky)", n)
	}
	// later keeps what it was enqueued with; flaky its attempt.
	mqtest.RequireEnqueued(t, c, "q",
		mqtest.Want{ID: "later", Value: order{"tea", 1}, Status: mq.StatusQueued,
			Metadata: map[string]string{"k": "v"}, Priority: mq.PriorityHigh, Policy: &mq.Policy{MaxAttempts: 3}},
		mqtest.Want{ID: "flaky", Value: "flaky", Status: mq.StatusQueued})

	res := drain()
	if got := res.IDs(mq.OutcomeSucceeded); len(got) != 1 || got[0] != "later" {
		t.Errorf("round 2 succeeded %v, want [later]", got)
	}
	if got := res.Handlings; len(got) != 2 || got[0].ID != "later" || got[1].ID != "flaky" || got[1].Attempt != 2 {
		t.Errorf("round 2: %+v, want later (high) then flaky's attempt 2", got)
	}
	if n := mqtest.EndBackoffs(t, c, "q"); n != 1 {
		t.Errorf("round 2 ended %d backoffs, want 1 (flaky)", n)
	}
	if got := drain().IDs(mq.OutcomeSucceeded); len(got) != 1 || got[0] != "flaky" {
		t.Errorf("round 3 succeeded %v, want [flaky]", got)
	}
	if n := mqtest.EndBackoffs(t, c, "q"); n != 0 {
		t.Errorf("ended %d backoffs at the end, want 0: a dedupe window is not a backoff to end", n)
	}
	// What is left is the dedupe window.
	mqtest.RequireEnqueued(t, c, "q", mqtest.Want{ID: "done", Status: mq.StatusDoneWithBackoff})
	if n := len(mqtest.Enqueued(t, c, "q")); n != 1 {
		t.Errorf("%d messages left, want 1", n)
	}
}

func TestDrainPausedQueueHasNothingReady(t *testing.T) {
	c := mqtest.New(t)
	enqueue(t, c, "q", "x", &mq.EnqueueOptions{MessageID: "x"})
	if _, err := c.Inspector().PauseQueue(context.Background(), "q"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := mqtest.Drain(ctx, c, "q", mq.HandlerFunc(func(context.Context, *mq.Message) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Handlings) != 0 {
		t.Errorf("handlings %+v on a paused queue, want none", res.Handlings)
	}
	mqtest.RequireEnqueued(t, c, "q", mqtest.Want{ID: "x", Status: mq.StatusQueued})
}

package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The completer on its own, with a fake Redis behind its pollers.

// fakePolls answers poll calls: the first fails calls fail, then each
// completion is recorded unless its id is in lost.
type fakePolls struct {
	mu     sync.Mutex
	fails  int
	lost   map[string]bool
	calls  []protocol.PollArgs
	called chan protocol.PollArgs
}

func newFakePolls(fails int, lost ...string) *fakePolls {
	f := &fakePolls{fails: fails, lost: map[string]bool{}, called: make(chan protocol.PollArgs, 100)}
	for _, id := range lost {
		f.lost[id] = true
	}
	return f
}

func (f *fakePolls) send(_ context.Context, a protocol.PollArgs) (protocol.PollReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, a)
	f.called <- a
	if f.fails > 0 {
		f.fails--
		return protocol.PollReply{}, errors.New("fake: Redis is away")
	}
	r := protocol.PollReply{QueueSize: -1, Recorded: make([]bool, len(a.Completions))}
	for i, c := range a.Completions {
		r.Recorded[i] = !f.lost[c.ID]
	}
	return r, nil
}

// next waits for the next call.
func (f *fakePolls) next(t *testing.T) protocol.PollArgs {
	t.Helper()
	select {
	case a := <-f.called:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no poll call")
		return protocol.PollArgs{}
	}
}

// outboxLog records what a completer tells its events sink.
type outboxLog struct {
	mu       sync.Mutex
	saved    []string // recorded
	lost     []string
	dropped  int // outcomes abandoned
	named    []string
	failures int
}

func (l *outboxLog) readied() {}

func (l *outboxLog) Recorded(p Pending) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.saved = append(l.saved, p.ID)
}

func (l *outboxLog) LockLost(p Pending) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lost = append(l.lost, p.ID)
}

func (l *outboxLog) Abandoned(ps []Pending, n int, _ string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped += n
	for _, p := range ps {
		l.named = append(l.named, p.ID)
	}
}

func (l *outboxLog) RecordFailed(error, int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
}

func (l *outboxLog) snapshot() outboxLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return outboxLog{saved: l.saved, lost: l.lost, dropped: l.dropped, named: l.named, failures: l.failures}
}

func outcomeFor(id string, outcome protocol.Outcome) Pending {
	return Pending{Completion: protocol.Completion{ID: id, LockedUntil: 1, Outcome: outcome}, Attempt: 1}
}

func ids(cs []protocol.Completion) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// runOutbox runs o's flusher until the test ends, or until the returned
// stop is called; stop returns once the flusher has.
func runOutbox(t *testing.T, o *Completer, killed context.Context) (stop func()) {
	stopCh, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		o.Run(killed, stopCh)
	}()
	stop = sync.OnceFunc(func() { close(stopCh); <-done })
	t.Cleanup(stop)
	return stop
}

// TestOutboxFlushesWhileLoopsSleep: with no polling loop awake, an outcome
// handed in is recorded by the flusher at once; with one awake, it waits
// for that loop's poll, which reports lost locks (but not for releases).
func TestCompleterFlushesWhileLoopsSleep(t *testing.T) {
	f, ev := newFakePolls(0, "lost", "lost-release"), &outboxLog{}
	o := NewCompleter(f.send, ev)
	runOutbox(t, o, context.Background())

	o.Awoken() // a loop is awake: it takes the outcomes with its poll
	o.Add(outcomeFor("b", protocol.OutcomeSuccess))
	o.Add(outcomeFor("lost", protocol.OutcomeDead))
	o.Add(outcomeFor("lost-release", protocol.OutcomeRelease))
	batch := o.Take(10)
	assert.Equal(t, []string{"b", "lost", "lost-release"}, ids(completionsOf(batch)))
	o.Done(batch, []bool{true, false, false})
	assert.Equal(t, []string{"lost"}, ev.snapshot().lost, "a release whose lock was lost is no loss")
	assert.Equal(t, []string{"b"}, ev.snapshot().saved, "a fenced outcome counts as lost only")

	o.Asleep() // now no loop is awake: the flusher records at once
	o.Add(outcomeFor("a", protocol.OutcomeSuccess))
	assert.Equal(t, []string{"a"}, ids(f.next(t).Completions), "the first call the flusher made")
}

func completionsOf(ps []Pending) []protocol.Completion {
	cs := make([]protocol.Completion, len(ps))
	for i, p := range ps {
		cs[i] = p.Completion
	}
	return cs
}

// TestOutboxRetriesAndResendsInDoubt: while Redis fails, the flusher tries
// again, each call resending the outcomes in doubt under a new number of
// the same poller, until one call is answered.
func TestCompleterRetriesAndResendsInDoubt(t *testing.T) {
	f, ev := newFakePolls(2), &outboxLog{}
	o := NewCompleter(f.send, ev)
	runOutbox(t, o, context.Background())
	o.Add(outcomeFor("a", protocol.OutcomeSuccess))
	first, second, third := f.next(t), f.next(t), f.next(t)
	for _, a := range []protocol.PollArgs{first, second, third} {
		assert.Equal(t, []string{"a"}, ids(a.Completions))
		assert.Equal(t, first.Poller, a.Poller, "one poller")
		assert.Zero(t, a.Confirmed, "no call was answered before")
	}
	assert.Equal(t, []uint64{1, 2, 3}, []uint64{first.Seq, second.Seq, third.Seq})
	got := ev.snapshot()
	assert.Equal(t, 2, got.failures)
	assert.Zero(t, got.dropped)
}

// TestOutboxStopAbandonsWhatRedisWillNotTake: a stop whose context has
// ended while Redis fails abandons the outcomes, naming them.
func TestCompleterStopAbandonsWhatRedisWillNotTake(t *testing.T) {
	f, ev := newFakePolls(1<<30), &outboxLog{}
	o := NewCompleter(f.send, ev)
	killed, kill := context.WithCancel(context.Background())
	stop := runOutbox(t, o, killed)
	o.Awoken() // no flush before the stop
	o.Add(outcomeFor("a", protocol.OutcomeSuccess))
	kill()
	stop()
	got := ev.snapshot()
	assert.Equal(t, 1, got.dropped)
	assert.Equal(t, []string{"a"}, got.named)
	o.Add(outcomeFor("late", protocol.OutcomeSuccess))
	assert.Equal(t, 2, ev.snapshot().dropped, "handed in after the stop")
}

// TestOutboxCloseNowCountsOnce: a stop cut short counts every outcome not
// known to be recorded, pending or in a call not answered, once; what
// that call answers later is not counted again.
func TestCompleterCloseNowCountsOnce(t *testing.T) {
	ev := &outboxLog{}
	o := NewCompleter(newFakePolls(0).send, ev)
	o.Awoken()
	o.Add(outcomeFor("in-flight", protocol.OutcomeSuccess))
	batch := o.Take(10) // a loop's call, not answered yet
	o.Add(outcomeFor("pending", protocol.OutcomeSuccess))
	require.Equal(t, 2, o.CloseNow())
	assert.Zero(t, o.CloseNow(), "once")
	o.Done(batch, []bool{true})
	got := ev.snapshot()
	assert.Equal(t, 2, got.dropped)
	assert.Equal(t, []string{"pending"}, got.named)
	assert.Empty(t, got.saved, "the late answer is not counted")

	o.Open() // a new run
	o.Add(outcomeFor("next", protocol.OutcomeSuccess))
	assert.Equal(t, []string{"next"}, ids(completionsOf(o.Take(10))))
}

// TestOutboxSettlesAdoptedPollers: a loop that ended with its last call
// unanswered hands its poller over, and the flusher makes the call that
// settles it, under that poller's id, resending its outcomes.
func TestCompleterSettlesAdoptedPollers(t *testing.T) {
	f, ev := newFakePolls(1), &outboxLog{}
	loop := NewPoller(f.send)
	_, _, err := loop.Call(context.Background(), protocol.PollArgs{MaxSteps: 1}, []Pending{outcomeFor("x", protocol.OutcomeSuccess)})
	require.Error(t, err)
	f.next(t)
	require.False(t, loop.Settled())

	o := NewCompleter(f.send, ev)
	stop := runOutbox(t, o, context.Background())
	o.Adopt(loop)
	a := f.next(t)
	assert.Equal(t, loop.id, a.Poller)
	assert.Equal(t, []string{"x"}, ids(a.Completions))
	assert.Equal(t, uint64(2), a.Seq)
	assert.Zero(t, a.MaxSteps, "a settling call takes no message")
	stop()
	assert.True(t, loop.Settled())
}

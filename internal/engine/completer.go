package engine

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// MaxOutcomesPerCall bounds the outcomes recorded by one script call.
const MaxOutcomesPerCall = 256

// maxErrorBackoff caps the pause after consecutive call errors, which
// Carmine lets grow to many minutes: a worker notices a returning Redis
// within about a second.
const maxErrorBackoff = time.Second

// Pending is an outcome waiting to be recorded: a handling's, or the
// release of a message given back unhandled.
type Pending struct {
	protocol.Completion
	Attempt int64 // for the logs
	Failed  bool  // a retry or dead letter after the handler failed
	// Relay is set when the outcome may leave hand-off records (§22)
	// for the worker's relay: its FollowUps, or Batch, the tick of a
	// batch member.
	Relay, Batch bool
	// Cancelled is set once Redis recorded the outcome as cancelled, its
	// message's cancel standing (docs/protocol.md §20).
	Cancelled bool
}

// markCancelled sets Cancelled on the outcomes of batch that a poll
// recorded as cancelled (protocol.PollReply.Cancelled, in batch's order).
func markCancelled(batch []Pending, cancelled []bool) {
	for i := range batch {
		if i < len(cancelled) && cancelled[i] {
			batch[i].Cancelled = true
		}
	}
}

// Completer holds the outcomes of finished handlings until they are
// recorded: the last part of a message's way (fetch, execute, complete).
//
// The fetcher's awake polling loops pull outcomes from it (Take) and
// record them in their next poll call, so that one round trip both
// records outcomes and takes new messages; they report what the call did
// (Done). While every loop sleeps (at the end of the queue, after errors,
// or waiting for room longer than the fetcher's outcome delay), the
// completer's own flusher records them instead, so that an outcome is
// never held back. What became of each outcome goes to one sink, Events.
type Completer struct {
	send   PollFunc // for the flusher's calls
	events Events   // where what became of outcomes is told
	alarm  alarm    // rung when the flusher made something ready

	mu      sync.Mutex
	pending []Pending
	taken   int       // taken by a loop or the flusher, not yet resolved
	orphans []*Poller // pollers of loops that ended with a call unanswered
	awake   int       // polling loops not asleep
	closed  bool      // no flusher runs: outcomes handed in now are abandoned
	cut     bool      // closed by a stop cut short, which counted what was left
	kick    chan struct{}
}

// Events is the one sink of what becomes of outcomes handed to a
// Completer, for the worker's stats, subscribers and logs. Its methods are
// called from the polling loops and the flusher, concurrently.
type Events interface {
	// Recorded: a handling's outcome was recorded.
	Recorded(p Pending)
	// LockLost: an outcome was not recorded, its lock lost meanwhile.
	LockLost(p Pending)
	// Abandoned: outcomes (n of them; ps those whose ids are known) are
	// given up on, their messages left locked until the locks expire.
	Abandoned(ps []Pending, n int, why string)
	// RecordFailed: a call that records outcomes failed; the flusher
	// tries again in retryIn.
	RecordFailed(err error, outcomes int, retryIn time.Duration)
}

// readies tells whether recorded outcomes of batch include one that
// makes its message ready or due: a retry or a release.
func readies(batch []Pending, recorded []bool) bool {
	for i, p := range batch {
		if recorded[i] && (p.Outcome == protocol.OutcomeRetry || p.Outcome == protocol.OutcomeRelease) {
			return true
		}
	}
	return false
}

// NewCompleter returns a completer whose flusher records through send and
// tells events what became of each outcome.
func NewCompleter(send PollFunc, events Events) *Completer {
	return &Completer{send: send, events: events, alarm: newAlarm(), kick: make(chan struct{}, 1)}
}

// Readied answers a channel closed once the flusher, which records while
// every polling loop sleeps, recorded an outcome that made a message ready,
// or due sooner than the loops' sleeps may end: take it before a poll, and
// let it end the sleep after that poll.
func (o *Completer) Readied() <-chan struct{} { return o.alarm.wait() }

// Add hands in one outcome.
func (o *Completer) Add(p Pending) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.events.Abandoned([]Pending{p}, 1, "handed in after the worker closed")
		return
	}
	o.pending = append(o.pending, p)
	if o.awake == 0 {
		o.signal()
	}
	o.mu.Unlock()
}

// signal wakes the flusher. o.mu is held.
func (o *Completer) signal() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Take removes up to n outcomes for recording.
func (o *Completer) Take(n int) []Pending {
	o.mu.Lock()
	defer o.mu.Unlock()
	n = min(len(o.pending), n)
	if n == 0 {
		return nil
	}
	batch := make([]Pending, n)
	copy(batch, o.pending)
	o.pending = append(o.pending[:0], o.pending[n:]...)
	o.taken += n
	return batch
}

// Done resolves outcomes taken with Take: recorded holds the script's
// answers, which the events hear of (releases aside). (Outcomes of a call
// that failed are not put back: they stay with the poller that sent them,
// which sends them again; see poller.)
func (o *Completer) Done(batch []Pending, recorded []bool) {
	if len(batch) == 0 {
		return
	}
	o.mu.Lock()
	cut := o.cut
	o.mu.Unlock()
	for i, p := range batch {
		switch {
		case cut || p.Outcome == protocol.OutcomeRelease:
			// counted by CloseNow, or at the give-back
		case recorded[i]:
			o.events.Recorded(p)
		default:
			o.events.LockLost(p)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.cut {
		o.taken -= len(batch)
	}
}

// Adopt takes over a poller whose loop ended before its last call was
// answered: the flusher makes the call that settles it.
func (o *Completer) Adopt(p *Poller) {
	o.mu.Lock()
	if o.cut {
		p.inDoubt = nil // counted as abandoned by CloseNow
	}
	o.orphans = append(o.orphans, p)
	o.signal()
	o.mu.Unlock()
}

// takeOrphan removes one adopted poller, nil if none.
func (o *Completer) takeOrphan() *Poller {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.orphans) == 0 {
		return nil
	}
	p := o.orphans[0]
	o.orphans = o.orphans[1:]
	return p
}

// Asleep and Awoken bracket a polling loop's sleeps: while no loop is
// awake, the flusher records what is handed in.
func (o *Completer) Asleep() {
	o.mu.Lock()
	o.awake--
	if o.awake == 0 && len(o.pending) > 0 {
		o.signal()
	}
	o.mu.Unlock()
}

func (o *Completer) Awoken() {
	o.mu.Lock()
	o.awake++
	o.mu.Unlock()
}

// flush settles the adopted pollers and records outcomes until none are
// pending, with its own poller p, retrying while Redis fails, until killed
// ends; then it abandons what is left.
func (o *Completer) flush(killed context.Context, p *Poller) {
	for errs := 0; ; {
		q := p
		if orphan := o.takeOrphan(); orphan != nil {
			q = orphan
		}
		var batch []Pending
		if q == p {
			batch = o.Take(p.Room())
			if len(batch) == 0 && p.Settled() {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, resolved, err := q.Call(ctx, protocol.PollArgs{}, batch)
		cancel()
		if err == nil {
			errs = 0
			markCancelled(resolved, r.Cancelled)
			o.Done(resolved, r.Recorded)
			if readies(resolved, r.Recorded) {
				o.alarm.ring()
			}
			continue
		}
		if q != p {
			o.Adopt(q) // try it again later
		}
		errs++
		d := ExpBackoff(min(12, errs), 0, maxErrorBackoff, 200*time.Millisecond)
		o.events.RecordFailed(err, len(q.inDoubt), d)
		if !SleepCtx(killed, d) {
			o.abandonAll(p)
			return
		}
	}
}

// abandonAll gives up on every outcome not recorded: those pending, those
// in doubt with p and with the adopted pollers. Their messages stay locked
// until their locks expire, then are handled again.
func (o *Completer) abandonAll(p *Poller) {
	for q := p; q != nil; q = o.takeOrphan() {
		o.abandon(q.inDoubt)
		q.inDoubt = nil
	}
	for b := o.Take(MaxOutcomesPerCall); len(b) > 0; b = o.Take(MaxOutcomesPerCall) {
		o.abandon(b)
	}
}

// abandon gives up on taken outcomes: their messages stay locked until
// their locks expire, then are handled again.
func (o *Completer) abandon(batch []Pending) {
	o.mu.Lock()
	cut := o.cut // if so, CloseNow counted them
	if !cut {
		o.taken -= len(batch)
	}
	o.mu.Unlock()
	if !cut && len(batch) > 0 {
		o.events.Abandoned(batch, len(batch), "not recorded before the stop")
	}
}

// Run is the flusher goroutine: it records outcomes while every loop
// sleeps, and once more when stop is closed, then returns. Outcomes handed
// in after that are abandoned.
func (o *Completer) Run(killed context.Context, stop <-chan struct{}) {
	p := NewPoller(o.send)
	for {
		select {
		case <-o.kick:
			o.flush(killed, p)
		case <-stop:
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			o.flush(killed, p)
			return
		}
	}
}

// CloseNow closes the completer for a stop cut short: every outcome not
// known to be recorded (pending, or taken by a call not answered) is
// abandoned and counted now, once; what calls still in flight answer
// later is not counted again. Adopted pollers are still settled by the
// next run's flusher, which gives back what their calls handed out. It
// answers how many outcomes it abandoned.
func (o *Completer) CloseNow() int {
	o.mu.Lock()
	if o.cut {
		o.mu.Unlock()
		return 0
	}
	pending, n := o.pending, len(o.pending)+o.taken
	for _, q := range o.orphans {
		q.inDoubt = nil
	}
	o.pending, o.taken = nil, 0
	o.closed, o.cut = true, true
	o.mu.Unlock()
	if n > 0 {
		o.events.Abandoned(pending, n, "not recorded before the stop")
	}
	return n
}

// Open readies the completer for a (re)started worker, once the goroutines
// of the last run have returned.
func (o *Completer) Open() {
	o.mu.Lock()
	o.closed, o.cut = false, false
	o.mu.Unlock()
}

// Poller makes the poll calls of one polling loop, or of a worker's
// flusher, one at a time, and keeps what recovering from a lost reply
// needs: the calls are numbered, and the outcomes that calls without a
// reply carried are sent again, first, by the next call, which learns from
// the poller's receipt in Redis what those calls applied (dequeue.lua). So a
// reply lost on the way back, or a call go-redis sends twice, never
// records an outcome twice, never counts an outcome as lost when it was
// recorded, and never leaves the messages it handed out locked.
//
// A Poller is used by one goroutine at a time.
type Poller struct {
	send PollFunc
	id   string // the poller's receipt id

	seq       uint64    // the number of the last call made
	confirmed uint64    // the number of the last call whose reply came
	inDoubt   []Pending // outcomes of the calls after confirmed, in order
}

// PollFunc makes one poll call of a queue: the Store's Poll, or a fake in
// tests.
type PollFunc func(ctx context.Context, a protocol.PollArgs) (protocol.PollReply, error)

// NewPoller returns a poller that calls send, with a receipt id of its own.
func NewPoller(send PollFunc) *Poller {
	return &Poller{send: send, id: randomID()}
}

// Call sends the outcomes in doubt and then fresh, and polls as a says
// (a.Completions is set here). On success it answers the reply and the
// outcomes it resolved, in the order of reply.Recorded. On error all of
// them stay in doubt, to be sent by the next call.
func (p *Poller) Call(ctx context.Context, a protocol.PollArgs, fresh []Pending) (protocol.PollReply, []Pending, error) {
	sent := append(p.inDoubt, fresh...)
	a.Completions = make([]protocol.Completion, len(sent))
	for i, o := range sent {
		a.Completions[i] = o.Completion
	}
	p.seq++
	a.Poller, a.Seq, a.Confirmed = p.id, p.seq, p.confirmed
	r, err := p.send(ctx, a)
	if err != nil {
		p.inDoubt = sent
		return r, nil, err
	}
	p.confirmed, p.inDoubt = p.seq, nil
	return r, sent, nil
}

// Settled tells whether every call of the poller has had its reply: if
// not, the last one may have applied, and only another call can tell.
func (p *Poller) Settled() bool { return p.confirmed == p.seq }

// Room is how many fresh outcomes the next call may carry.
func (p *Poller) Room() int { return max(0, MaxOutcomesPerCall-len(p.inDoubt)) }

// randomID answers a random id, for a poller's receipts.
func randomID() string {
	return strconv.FormatUint(rand.Uint64()|1<<63, 16)
}

package protocol

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/keys"
)

// StepKind is the kind of one poll step (docs/protocol.md §4).
type StepKind string

// The kinds of a poll step.
const (
	// StepSleep: the lap is over; the worker sleeps.
	StepSleep StepKind = "sleep"
	// StepSkip: the step took an id and did not hand it out.
	StepSkip StepKind = "skip"
	// StepHandle: the step handed a message out.
	StepHandle StepKind = "handle"
	// stepSolo is the step of a message handed out alone (§11,
	// Quarantine): parsed as StepHandle with Step.Solo set.
	stepSolo StepKind = "solo"
)

// SkipReasons are the reasons of every skip step dequeue.lua answers, in
// the order of §4.
var SkipReasons = []string{"did-trim", "unexpected", "locked", "queued-with-backoff",
	"done-with-backoff", "did-requeue", "did-gc", "quarantined", "indexed", "suspect", "cancelled",
	"rate-limited", "limited", "parked"}

// SkipSuspect is the skip reason of a suspect a poll set aside for a
// worker holding nothing (§11, Quarantine).
const SkipSuspect = "suspect"

// Step is one step's answer from dequeue.lua. Which fields are set depends
// on Kind.
type Step struct {
	// Kind is the step's kind.
	Kind StepKind

	// Reason is a skip step's reason, one of SkipReasons.
	Reason string

	// Sleep is how long a sleep step sleeps.
	Sleep time.Duration
	// SleepList is the isleep list a sleep step blocks on, "a" or "b" (§5).
	SleepList string
	// NDryRuns is the queue's ndry-runs after a sleep step.
	NDryRuns int64
	// UntilDue tells that a sleep step's Sleep was shortened to end when
	// the queue's earliest due entry falls due (§11): the worker should
	// wake then, not later.
	UntilDue bool

	// ID is the handed-out message's id.
	ID string
	// Data is the handed-out message as stored.
	Data []byte
	// Attempt counts the hand-outs of the message, from 1.
	Attempt int64
	// LockTime is the handed-out message's lock time.
	LockTime time.Duration
	// FirstEnqueued is when the message was first enqueued, Unix ms.
	FirstEnqueued int64
	// Due is when the message was due, Unix ms: the later of
	// FirstEnqueued and the end of the backoff it waited out (a delay,
	// a retry's backoff), as far as the poll knows it (docs/protocol.md
	// §16).
	Due int64
	// LockedUntil is when the lock runs out, Unix ms: the fencing token
	// of the handling (§7).
	LockedUntil int64
	// Now is the server's time of the step, Unix ms.
	Now int64
	// Metadata is the handed-out message's metadata as stored, nil for
	// none.
	Metadata []byte
	// Solo tells that the handed-out message is a suspect, handed out
	// alone to a worker holding nothing, or, once it waited its lock time
	// for one, as the last hand-out to a busy worker (§11, Quarantine):
	// the worker is to take nothing more until it is done with it.
	Solo bool
	// Policy is the handed-out message's own policy (§14), nil for none
	// (or one of a layout this version does not know).
	Policy *Policy
	// Priority is the handed-out message's priority (§18): PriorityHigh,
	// PriorityLow, or "" for normal.
	Priority string
}

// PollArgs are the arguments of one poll call.
type PollArgs struct {
	// LockTime is the worker's default lock time.
	LockTime time.Duration
	// Sleeps are the end-of-queue sleep times by ndry-runs (§4, step 2).
	Sleeps [5]time.Duration
	// MaxSteps bounds the steps; 0 only records the completions.
	MaxSteps int
	// MaxHandles, when positive, ends the call after that many messages
	// were handed out; otherwise only MaxSteps bounds it.
	MaxHandles int
	// WantSize asks for the queue size, which costs five reads.
	WantSize bool
	// Completions are outcomes to record before polling.
	Completions []Completion

	// DeadMaxCount and DeadMaxAge bound the queue's dead letters (§11);
	// 0 for no bound.
	DeadMaxCount int
	DeadMaxAge   time.Duration
	// ResultMaxCount and ResultMaxAge bound the queue's results (§21);
	// 0 for no bound.
	ResultMaxCount int
	ResultMaxAge   time.Duration
	// QuarantineAfter buries a message handed out that many times without
	// an outcome instead of handing it out again (§11); 0 for never.
	QuarantineAfter int
	// Held is how many messages the calling worker holds besides those
	// the call will hand out, or NotTold. A suspect (a message handed out
	// before without an outcome) is handed out only to a call holding
	// nothing, alone (§11, Quarantine); the zero value holds nothing.
	Held int
	// IndexOnly says that no Carmine worker reads the queue
	// (Config.NoCarmineWorkers): a message waiting out a backoff then
	// waits in the due index alone, off mid-circle (§11).
	IndexOnly bool

	// Poller identifies the poller making the call, Seq numbers the call
	// among its calls, and Confirmed is the number of its last call whose
	// reply arrived (§8).
	Poller         string
	Seq, Confirmed uint64

	// Lean, when set, is the queue's lean state for the calling client:
	// the call passes only the queue's first LeanKeys keys while the
	// queue uses no extension with keys of its own (§4). nil: every key.
	Lean *Lean
}

// LeanKeys is how many of a queue's keys a lean poll call passes
// (docs/protocol.md §4): messages .. prio, those of a queue that uses no
// extension with keys of its own (results .. limit-key).
const LeanKeys = int(keys.Results)

// Lean is one queue's lean state for one client (PollArgs.Lean): its
// poll calls pass the lean key set to a lean composition of the poll
// script until one of them is refused because the queue uses limits and
// no other extension with keys of its own (NeedLimits): from then on they
// pass every key to the lean composition with limits.lua; and, lean or
// with limits, until one of them carries a result or follow-ups for the
// relay, or is refused (NeedKeys) because the queue uses another
// extension with keys of its own: from then on they pass every key to the
// full composition. The zero value is lean; it is safe for concurrent
// use.
type Lean struct{ mode atomic.Int32 }

// The modes of a Lean, in the only order it goes through them.
const (
	leanPlain  int32 = iota // the lean key set, dequeue-lean
	leanLimits              // every key, dequeue-limits
	leanFull                // every key, dequeue
)

// Full tells whether the queue's calls pass every key to the full
// composition from now on.
func (l *Lean) Full() bool { return l.mode.Load() == leanFull }

// Limits tells whether the queue's calls go to the lean composition with
// limits.lua (§19), passing every key.
func (l *Lean) Limits() bool { return l.mode.Load() == leanLimits }

// to moves l on to mode m, never back.
func (l *Lean) to(m int32) {
	for {
		cur := l.mode.Load()
		if cur >= m || l.mode.CompareAndSwap(cur, m) {
			return
		}
	}
}

// modeOf answers the mode of the call a, and switches l to the full
// composition for good when a's outcomes need it (a result, or follow-ups
// for the relay, mark the queue as using an extension with keys of its
// own; follow-ups enqueued in the script need none, §22). A nil l is
// full.
func (l *Lean) modeOf(a *PollArgs) int32 {
	if l == nil {
		return leanFull
	}
	m := l.mode.Load()
	if m == leanFull {
		return m
	}
	for _, x := range a.Completions {
		if len(x.Result) > 0 || len(RelayRecord(x.FollowUps)) > 0 {
			l.to(leanFull)
			return leanFull
		}
	}
	return m
}

// enqueuesInScript tells whether any of cs has follow-ups that the poll
// script enqueues itself (§22, EncodeInScript): a lean call carrying
// them runs the lean composition that has the code for them (§4).
func enqueuesInScript(cs []Completion) bool {
	for _, c := range cs {
		if len(c.FollowUps) > 0 && c.FollowUps[0] == HandoffInScript {
			return true
		}
	}
	return false
}

// NotTold, as PollArgs.Held, does not tell the poll how many messages
// the worker holds: suspects are handed out as any message.
const NotTold = -1

// PollReceiptTTL is how long a poller's receipt is kept at least after
// its last call: a poller that comes back after a longer Redis outage no
// longer finds what its last call applied, and the messages that call
// handed out are handed out again when their locks expire.
const PollReceiptTTL = time.Hour

// argv is the call's script arguments, for a call whose keys are ks;
// inScript is the KEYS index of the first key of the queues follow-ups
// are enqueued to by the script (withInScriptKeys), 0 for none. The
// follow-ups the script enqueues go in the call's block where they can
// (inScriptBlock; §22, "The block"), as records where they cannot.
func (a PollArgs) argv(ks []string, inScript int) []any {
	maxHandles := a.MaxHandles
	if maxHandles <= 0 {
		maxHandles = a.MaxSteps
	}
	var fields, block []any
	if ks != nil && enqueuesInScript(a.Completions) {
		fields, block, _ = inScriptBlock(ks, inScript, a.Completions)
	}
	args := make([]any, 0, 22+7*len(a.Completions)+len(block))
	args = append(args, MS(a.LockTime))
	for _, d := range a.Sleeps {
		args = append(args, MS(d))
	}
	args = append(args, max(0, a.MaxSteps), maxHandles, boolArg(a.WantSize),
		a.Poller, a.Seq, a.Confirmed, MS(PollReceiptTTL),
		max(0, a.DeadMaxCount), MS(max(0, a.DeadMaxAge)), max(0, a.QuarantineAfter), len(a.Completions),
		boolArg(a.IndexOnly))
	for i, x := range a.Completions {
		var fu any = x.FollowUps
		if fields != nil {
			fu = fields[i]
		}
		args = append(args, x.ID, strconv.FormatInt(x.LockedUntil, 10), string(x.Outcome), MS(x.Backoff), x.Error,
			x.Result, fu)
	}
	args = append(args, max(NotTold, a.Held), max(0, a.ResultMaxCount), MS(max(0, a.ResultMaxAge)))
	if inScript > 0 || block != nil {
		args = append(args, inScript)
	}
	return append(args, block...)
}

// PollReply is dequeue.lua's answer: the steps taken and the queue size
// after.
type PollReply struct {
	// QueueSize is the queued count of §10 after the steps, -1 when not
	// asked for.
	QueueSize int64
	// Recorded answers, per completion sent, whether it took effect
	// (false: the lock was lost).
	Recorded []bool
	// Cancelled answers, per completion sent, whether it was recorded as
	// OutcomeCancelled, whatever it asked for, its message's cancel
	// standing (§20); Recorded is true for it too.
	Cancelled []bool
	// Steps are the steps taken, in order.
	Steps []Step
	// Sent is when the call was sent, by the local clock: the locks it
	// wrote run out no sooner than their lock time after it.
	Sent time.Time
}

// Poll records a.Completions, then takes up to a.MaxSteps steps of the
// queue's circle, all in one script call; keys are all of the queue's
// keys, of which a lean call (a.Lean) passes the first LeanKeys. The keys
// of the queues that completions' follow-ups are enqueued to in the
// script (EncodeInScript) are passed after the queue's own. A lean call
// refused with NeedKeys wrote nothing: Poll switches a.Lean to every key
// and sends the same call again. A call that comes after a later call of
// its poller fails with an error reply of code Stale.
func Poll(ctx context.Context, r Redis, keys []string, a PollArgs) (PollReply, error) {
	sent := time.Now()
	var raw []any
	var err error
	mode := a.Lean.modeOf(&a)
	if mode == leanPlain {
		ks, first := withInScriptKeys(keys[:LeanKeys:LeanKeys], a.Completions)
		script := dequeueLeanScript
		if enqueuesInScript(a.Completions) {
			script = dequeueLeanFollowUpsScript
		}
		raw, err = script.Run(ctx, r, ks, a.argv(ks, first)...).Slice()
		switch ErrorCode(err) {
		case NeedLimits:
			mode = leanLimits
			a.Lean.to(mode)
		case NeedKeys:
			mode = leanFull
			a.Lean.to(mode)
		}
	}
	// (a call that enqueues follow-ups in the script goes to the full
	// composition, which has their code: dequeue-limits has not)
	if mode == leanLimits && !enqueuesInScript(a.Completions) {
		ks, first := withInScriptKeys(keys, a.Completions)
		raw, err = dequeueLimitsScript.Run(ctx, r, ks, a.argv(ks, first)...).Slice()
		if ErrorCode(err) == NeedKeys {
			mode = leanFull
			a.Lean.to(mode)
		}
	} else if mode == leanLimits {
		mode = leanFull // (this call only)
	}
	if mode == leanFull {
		ks, first := withInScriptKeys(keys, a.Completions)
		raw, err = dequeueScript.Run(ctx, r, ks, a.argv(ks, first)...).Slice()
	}
	if err != nil {
		return PollReply{Sent: sent}, err
	}
	reply, err := parsePollReply(raw)
	reply.Sent = sent
	if err == nil && len(reply.Recorded) != len(a.Completions) {
		err = fmt.Errorf("%w: poll recorded %d of %d outcomes", ErrUnexpectedReply, len(reply.Recorded), len(a.Completions))
	}
	return reply, err
}

func parsePollReply(raw []any) (PollReply, error) {
	var r PollReply
	if len(raw) < 2 {
		return r, fmt.Errorf("%w: poll reply %v", ErrUnexpectedReply, raw)
	}
	r.QueueSize, _ = raw[0].(int64)
	recorded, ok := raw[1].([]any)
	if !ok {
		return r, fmt.Errorf("%w: poll reply %v", ErrUnexpectedReply, raw)
	}
	r.Recorded = make([]bool, len(recorded))
	r.Cancelled = make([]bool, len(recorded))
	for i, x := range recorded {
		r.Cancelled[i] = x == string(OutcomeCancelled)
		r.Recorded[i] = x == string(Recorded) || r.Cancelled[i]
	}
	r.Steps = make([]Step, 0, len(raw)-2)
	for _, e := range raw[2:] {
		s, err := parseStep(e)
		if err != nil {
			return r, err
		}
		r.Steps = append(r.Steps, s)
	}
	return r, nil
}

func parseStep(e any) (Step, error) {
	var s Step
	a, _ := e.([]any)
	if len(a) == 0 {
		return s, fmt.Errorf("%w: poll step %v", ErrUnexpectedReply, e)
	}
	kind, _ := a[0].(string)
	s.Kind = StepKind(kind)
	bad := func() (Step, error) {
		return Step{}, fmt.Errorf("%w: poll step %v", ErrUnexpectedReply, e)
	}
	switch s.Kind {
	case StepSleep:
		if len(a) != 5 {
			return bad()
		}
		ms, ok1 := a[1].(int64)
		list, ok2 := a[2].(string)
		n, ok3 := a[3].(int64)
		untilDue, ok4 := a[4].(int64)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return bad()
		}
		s.Sleep, s.SleepList, s.NDryRuns = time.Duration(ms)*time.Millisecond, list, n
		s.UntilDue = untilDue == 1
	case StepSkip:
		if len(a) != 2 {
			return bad()
		}
		s.Reason, _ = a[1].(string)
	case StepHandle, stepSolo:
		s.Kind, s.Solo = StepHandle, s.Kind == stepSolo
		if len(a) < 10 || len(a) > 12 {
			return bad()
		}
		if len(a) == 12 {
			s.Priority, _ = a[11].(string)
		}
		if len(a) >= 11 {
			raw, _ := a[10].(string)
			if p, err := DecodePolicy([]byte(raw)); err == nil {
				s.Policy = &p
			}
		}
		var ok [9]bool
		s.ID, ok[0] = a[1].(string)
		var data string
		data, ok[1] = a[2].(string)
		s.Data = []byte(data)
		s.Attempt, ok[2] = a[3].(int64)
		var lockMS int64
		lockMS, ok[3] = a[4].(int64)
		s.LockTime = time.Duration(lockMS) * time.Millisecond
		s.FirstEnqueued, ok[4] = a[5].(int64)
		s.LockedUntil, ok[5] = a[6].(int64)
		s.Now, ok[6] = a[7].(int64)
		s.Due, ok[8] = a[9].(int64)
		var meta string
		meta, ok[7] = a[8].(string)
		if meta != "" {
			s.Metadata = []byte(meta)
		}
		for _, o := range ok {
			if !o {
				return bad()
			}
		}
	default:
		return bad()
	}
	return s, nil
}

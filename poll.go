package mq

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The kinds of a poll step (SPEC section 4).
const (
	stepSleep  = "sleep"
	stepSkip   = "skip"
	stepHandle = "handle"
)

// pollStep is one step's answer from dequeue.lua.
type pollStep struct {
	kind string

	// skip
	reason string

	// sleep
	sleep     time.Duration
	sleepList string // "a" or "b": the isleep list to block on
	ndryRuns  int64

	// handle
	id            string
	data          []byte
	attempt       int64
	lockTime      time.Duration
	firstEnqueued int64 // Unix ms
	lockedUntil   int64 // Unix ms: the fencing token
	now           int64 // Unix ms, the server's
}

// pollReply is dequeue.lua's answer: the steps taken and the queue size after.
type pollReply struct {
	queueSize int64 // -1 when not asked for
	// recorded answers, per completion sent, whether it took effect
	// (false: the lock was lost).
	recorded []bool
	steps    []pollStep
	// sent is when the call was sent, by the local clock: the locks it
	// wrote run out no sooner than their lock time after it.
	sent time.Time
}

// pollArgs are the arguments of one poll call.
type pollArgs struct {
	lockTime time.Duration    // the worker's default lock time
	sleeps   [5]time.Duration // end-of-queue sleep times by ndry-runs
	// maxSteps bounds the steps; 0 only records the completions.
	maxSteps int
	// maxHandles, when positive, ends the call after that many messages
	// were handed out; otherwise only maxSteps bounds it.
	maxHandles int
	// wantSize asks for the queue size, which costs five reads.
	wantSize bool
	// completions are outcomes to record before polling.
	completions []completion

	// poller identifies the poller making the call, seq numbers the call
	// among its calls, and confirmed is the number of its last call whose
	// reply arrived (see dequeue.lua).
	poller         string
	seq, confirmed uint64
}

// pollReceiptTTL is how long a poller's receipt is kept at least after its
// last call: a poller that comes back after a longer Redis outage no
// longer finds what its last call applied, and the messages that call
// handed out are handed out again when their locks expire.
const pollReceiptTTL = time.Hour

// pollCall records a.completions, then takes up to a.maxSteps steps of the
// queue's circle, all in one script call.
func (c *Client) pollCall(ctx context.Context, queue string, a pollArgs) (pollReply, error) {
	maxHandles := a.maxHandles
	if maxHandles <= 0 {
		maxHandles = a.maxSteps
	}
	args := make([]any, 0, 14+4*len(a.completions))
	args = append(args, msArg(a.lockTime))
	for _, d := range a.sleeps {
		args = append(args, msArg(d))
	}
	args = append(args, max(0, a.maxSteps), maxHandles, boolArg(a.wantSize),
		a.poller, a.seq, a.confirmed, pollReceiptTTL.Milliseconds(), len(a.completions))
	args = appendCompletionArgs(args, a.completions)
	sent := time.Now()
	raw, err := runScript(ctx, c, pollScript, c.keys(queue), args...).Slice()
	if err != nil {
		return pollReply{}, fmt.Errorf("mq: poll %q: %w", queue, err)
	}
	r, err := parsePollReply(raw)
	r.sent = sent
	if err == nil && len(r.recorded) != len(a.completions) {
		err = fmt.Errorf("%w: poll recorded %d of %d outcomes", errUnexpectedReply, len(r.recorded), len(a.completions))
	}
	return r, err
}

// poll is one poll call by a poller of its own, for the tests and tools
// that poll outside a worker.
func (c *Client) poll(ctx context.Context, queue string, a pollArgs) (pollReply, error) {
	a.poller, a.seq, a.confirmed = randomID(), 1, 0
	return c.pollCall(ctx, queue, a)
}

// complete records outcomes in one script call and answers, per
// completion, whether it took effect (false: the lock was lost).
func (c *Client) complete(ctx context.Context, queue string, cs []completion) ([]bool, error) {
	r, err := c.poll(ctx, queue, pollArgs{completions: cs})
	if err != nil {
		return nil, err
	}
	return r.recorded, nil
}

// msArg is a duration in whole milliseconds, rounded up so that a
// positive duration never becomes zero, as the scripts take it.
func msArg(d time.Duration) int64 {
	ms, _ := durationMS("duration", max(0, d))
	return ms
}

func parsePollReply(raw []any) (pollReply, error) {
	var r pollReply
	if len(raw) < 2 {
		return r, fmt.Errorf("%w: poll reply %v", errUnexpectedReply, raw)
	}
	r.queueSize, _ = raw[0].(int64)
	recorded, ok := raw[1].([]any)
	if !ok {
		return r, fmt.Errorf("%w: poll reply %v", errUnexpectedReply, raw)
	}
	r.recorded = make([]bool, len(recorded))
	for i, x := range recorded {
		r.recorded[i] = x == "ok"
	}
	r.steps = make([]pollStep, 0, len(raw)-2)
	for _, e := range raw[2:] {
		s, err := parsePollStep(e)
		if err != nil {
			return r, err
		}
		r.steps = append(r.steps, s)
	}
	return r, nil
}

func parsePollStep(e any) (pollStep, error) {
	var s pollStep
	a, _ := e.([]any)
	if len(a) == 0 {
		return s, fmt.Errorf("%w: poll step %v", errUnexpectedReply, e)
	}
	s.kind, _ = a[0].(string)
	bad := func() (pollStep, error) {
		return pollStep{}, fmt.Errorf("%w: poll step %v", errUnexpectedReply, e)
	}
	switch s.kind {
	case stepSleep:
		if len(a) != 4 {
			return bad()
		}
		ms, ok1 := a[1].(int64)
		list, ok2 := a[2].(string)
		n, ok3 := a[3].(int64)
		if !ok1 || !ok2 || !ok3 {
			return bad()
		}
		s.sleep, s.sleepList, s.ndryRuns = time.Duration(ms)*time.Millisecond, list, n
	case stepSkip:
		if len(a) != 2 {
			return bad()
		}
		s.reason, _ = a[1].(string)
	case stepHandle:
		if len(a) != 8 {
			return bad()
		}
		var ok [7]bool
		s.id, ok[0] = a[1].(string)
		var data string
		data, ok[1] = a[2].(string)
		s.data = []byte(data)
		s.attempt, ok[2] = a[3].(int64)
		var lockMS int64
		lockMS, ok[3] = a[4].(int64)
		s.lockTime = time.Duration(lockMS) * time.Millisecond
		s.firstEnqueued, ok[4] = a[5].(int64)
		s.lockedUntil, ok[5] = a[6].(int64)
		s.now, ok[6] = a[7].(int64)
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

// Outcomes of a handling, as outcome.lua names them.
const (
	outcomeSuccess = "success"
	outcomeRetry   = "retry"
	outcomeError   = "error"
	// outcomeRelease gives back a message taken but never handed to the
	// handler: unlocked, its attempt uncounted, first in line again.
	outcomeRelease = "release"
)

// completion is the outcome of one handling, fenced on its lock.
type completion struct {
	id          string
	lockedUntil int64 // the token from poll or renew
	outcome     string
	backoff     time.Duration
}

// appendCompletionArgs appends the script arguments of cs, four each.
func appendCompletionArgs(args []any, cs []completion) []any {
	for _, x := range cs {
		args = append(args, x.id, strconv.FormatInt(x.lockedUntil, 10), x.outcome, msArg(x.backoff))
	}
	return args
}

// renewal asks to push one lock forward.
type renewal struct {
	id          string
	lockedUntil int64 // the current token
	lockTime    time.Duration
}

// renew pushes locks forward in one script call and answers, per renewal,
// the new token, or 0 when the lock was lost.
func (c *Client) renew(ctx context.Context, queue string, rs []renewal) ([]int64, error) {
	args := make([]any, 0, 3*len(rs))
	for _, x := range rs {
		args = append(args, x.id, strconv.FormatInt(x.lockedUntil, 10), msArg(max(time.Millisecond, x.lockTime)))
	}
	raw, err := runScript(ctx, c, renewScript, c.keys(queue), args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("mq: renew locks in %q: %w", queue, err)
	}
	if len(raw) != len(rs) {
		return nil, fmt.Errorf("%w: renew answered %d of %d", errUnexpectedReply, len(raw), len(rs))
	}
	return raw, nil
}

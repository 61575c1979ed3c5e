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

// pollStep is one step's answer from poll.lua.
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

// pollReply is poll.lua's answer: the steps taken and the queue size after.
type pollReply struct {
	queueSize int64 // -1 when not asked for
	// recorded answers, per completion sent, whether it took effect
	// (false: the lock was lost).
	recorded []bool
	steps    []pollStep
}

// pollArgs are the arguments of one poll call.
type pollArgs struct {
	lockTime time.Duration    // the worker's default lock time
	sleeps   [5]time.Duration // end-of-queue sleep times by ndry-runs
	maxSteps int
	// maxHandles, when positive, ends the call after that many messages
	// were handed out; otherwise only maxSteps bounds it.
	maxHandles int
	// wantSize asks for the queue size, which costs five reads.
	wantSize bool
	// completions are outcomes to record before polling.
	completions []completion
}

// poll records a.completions, then takes up to a.maxSteps steps of the
// queue's circle, all in one script call.
func (c *Client) poll(ctx context.Context, queue string, a pollArgs) (pollReply, error) {
	maxSteps := max(1, a.maxSteps)
	maxHandles := a.maxHandles
	if maxHandles <= 0 {
		maxHandles = maxSteps
	}
	args := make([]any, 0, 10+4*len(a.completions))
	args = append(args, a.lockTime.Milliseconds())
	for _, d := range a.sleeps {
		args = append(args, d.Milliseconds())
	}
	args = append(args, maxSteps, maxHandles, boolArg(a.wantSize), len(a.completions))
	args = appendCompletionArgs(args, a.completions)
	raw, err := pollScript.Run(ctx, c.rdb, c.keys(queue), args...).Slice()
	if err != nil {
		return pollReply{}, fmt.Errorf("mq: poll %q: %w", queue, err)
	}
	r, err := parsePollReply(raw)
	if err == nil && len(r.recorded) != len(a.completions) {
		err = fmt.Errorf("%w: poll recorded %d of %d outcomes", errUnexpectedReply, len(r.recorded), len(a.completions))
	}
	return r, err
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

// Outcomes of a handling, as complete.lua names them.
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
		backoff, _ := durationMS("backoff", max(0, x.backoff))
		args = append(args, x.id, strconv.FormatInt(x.lockedUntil, 10), x.outcome, backoff)
	}
	return args
}

// complete records outcomes in one script call and answers, per
// completion, whether it took effect (false: the lock was lost).
func (c *Client) complete(ctx context.Context, queue string, cs []completion) ([]bool, error) {
	args := appendCompletionArgs(make([]any, 0, 4*len(cs)), cs)
	raw, err := completeScript.Run(ctx, c.rdb, c.keys(queue), args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("mq: complete in %q: %w", queue, err)
	}
	if len(raw) != len(cs) {
		return nil, fmt.Errorf("%w: complete answered %d of %d", errUnexpectedReply, len(raw), len(cs))
	}
	ok := make([]bool, len(cs))
	for i, r := range raw {
		ok[i] = r == "ok"
	}
	return ok, nil
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
		lockMS, _ := durationMS("lock time", max(time.Millisecond, x.lockTime))
		args = append(args, x.id, strconv.FormatInt(x.lockedUntil, 10), lockMS)
	}
	raw, err := renewScript.Run(ctx, c.rdb, c.keys(queue), args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("mq: renew locks in %q: %w", queue, err)
	}
	if len(raw) != len(rs) {
		return nil, fmt.Errorf("%w: renew answered %d of %d", errUnexpectedReply, len(raw), len(rs))
	}
	return raw, nil
}

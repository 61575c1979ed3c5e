package protocol

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gocarmine/mq/internal/keys"
)

// The calls of a queue's schedules (docs/protocol.md §15): schedules.lua
// reads and administers them, tick.lua enqueues a tick once. schedKeys
// are the queue's two schedule keys (keys.Schedules), queueKeys all its
// other keys (keys.All).

// ScheduleEntry is one schedule as schedules.lua reads it.
type ScheduleEntry struct {
	Name string
	// Spec is the spec as the client encoded it.
	Spec string
	// Next is the next tick's server time (Unix ms), 0 when it has none
	// (paused).
	Next int64
}

// PeekSchedule answers the server's time (Unix ms) and the schedule whose
// tick comes first, with ok false when no schedule has a next tick; its
// Spec is read only when the tick is due (Next <= now), "" otherwise.
func PeekSchedule(ctx context.Context, r Redis, schedKeys []string) (now int64, first ScheduleEntry, ok bool, err error) {
	reply, err := schedulesScript.Run(ctx, r, schedKeys, "peek").Slice()
	if err != nil {
		return 0, first, false, err
	}
	if len(reply) != 1 && len(reply) != 4 {
		return 0, first, false, fmt.Errorf("%w: schedule peek answered %d items", ErrUnexpectedReply, len(reply))
	}
	now, okNow := reply[0].(int64)
	if !okNow {
		return 0, first, false, fmt.Errorf("%w: schedule peek's time %v", ErrUnexpectedReply, reply[0])
	}
	if len(reply) == 1 {
		return now, first, false, nil
	}
	name, ok1 := reply[1].(string)
	next, ok2 := reply[2].(int64)
	spec, ok3 := reply[3].(string)
	if !ok1 || !ok2 || !ok3 {
		return 0, first, false, fmt.Errorf("%w: schedule peek answered %v", ErrUnexpectedReply, reply)
	}
	return now, ScheduleEntry{Name: name, Spec: spec, Next: next}, true, nil
}

// ListSchedules answers the server's time (Unix ms) and every schedule of
// the queue, in no order.
func ListSchedules(ctx context.Context, r Redis, schedKeys []string) (int64, []ScheduleEntry, error) {
	reply, err := schedulesScript.Run(ctx, r, schedKeys, "list").Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(reply) == 0 {
		return 0, nil, fmt.Errorf("%w: schedule list answered nothing", ErrUnexpectedReply)
	}
	now, ok := reply[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("%w: schedule list's time %v", ErrUnexpectedReply, reply[0])
	}
	out := make([]ScheduleEntry, 0, len(reply)-1)
	for _, item := range reply[1:] {
		row, ok := item.([]any)
		if !ok || len(row) != 3 {
			return 0, nil, fmt.Errorf("%w: schedule list entry %v", ErrUnexpectedReply, item)
		}
		name, ok1 := row[0].(string)
		spec, ok2 := row[1].(string)
		score, ok3 := row[2].(string)
		if !ok1 || !ok2 || !ok3 {
			return 0, nil, fmt.Errorf("%w: schedule list entry %v", ErrUnexpectedReply, row)
		}
		e := ScheduleEntry{Name: name, Spec: spec}
		if score != "" {
			f, err := strconv.ParseFloat(score, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("%w: schedule %q's next tick %q", ErrUnexpectedReply, name, score)
			}
			e.Next = int64(f)
		}
		out = append(out, e)
	}
	return now, out, nil
}

// SetSchedule stores a schedule's spec and its next tick (0: none, paused),
// and answers whether the name was new.
func SetSchedule(ctx context.Context, r Redis, schedKeys []string, name, spec string, next int64) (bool, error) {
	n, err := schedulesScript.Run(ctx, r, schedKeys, "set", name, spec, next).Int64()
	return n == 1, err
}

// The answers of ReplaceSchedule.
const (
	ScheduleReplaced = 1
	ScheduleChanged  = 0
	ScheduleUnknown  = -1
)

// ReplaceSchedule is SetSchedule only while the schedule still has the
// spec old: it answers ScheduleReplaced, ScheduleChanged (the spec was
// not old; nothing written) or ScheduleUnknown (no such schedule).
func ReplaceSchedule(ctx context.Context, r Redis, schedKeys []string, name, old, spec string, next int64) (int64, error) {
	return schedulesScript.Run(ctx, r, schedKeys, "cas", name, old, spec, next).Int64()
}

// DeleteSchedule deletes a schedule and answers whether there was one.
func DeleteSchedule(ctx context.Context, r Redis, schedKeys []string, name string) (bool, error) {
	n, err := schedulesScript.Run(ctx, r, schedKeys, "del", name).Int64()
	return n == 1, err
}

// Tick is one call of tick.lua.
type Tick struct {
	// Name and Spec are the schedule's, as read with its tick's time At
	// (Unix ms); Next is the next tick's time.
	Name, Spec string
	At, Next   int64
	// Enqueue says whether to enqueue the message (false: skip the tick).
	Enqueue bool
	// ID, Content, LockTime (ms, 0 for the worker's) and Meta ("" for
	// none) are the tick's message.
	ID, Content, Meta string
	LockTime          int64
}

// RunTick runs tick.lua and answers whether this call took the tick:
// false when the schedule's next tick or spec had changed, and nothing
// was written.
func RunTick(ctx context.Context, r Redis, schedKeys, queueKeys []string, t Tick) (bool, error) {
	ks := []string{schedKeys[0], schedKeys[1],
		queueKeys[keys.Messages], queueKeys[keys.UDTs], queueKeys[keys.MidsReady], queueKeys[keys.MidCircle],
		queueKeys[keys.ISleepA], queueKeys[keys.ISleepB], queueKeys[keys.LockTimes], queueKeys[keys.Meta]}
	n, err := tickScript.Run(ctx, r, ks, t.Name, t.At, t.Spec, t.Next, boolArg(t.Enqueue),
		t.ID, t.Content, t.LockTime, t.Meta).Int64()
	return n == 1, err
}

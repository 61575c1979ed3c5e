package protocol

import (
	"context"
	"fmt"
	"time"
)

// MessageRead is what msg-status.lua reads of one message, in one atomic
// step: its status and what goes with it.
type MessageRead struct {
	// Status is the message's status name of docs/protocol.md §2, "" for
	// a message not in the queue.
	Status string
	// Attempts is nattempts, 0 if none.
	Attempts int64
	// BackoffUntil is when its backoff ends, LockedUntil when its lock runs
	// out, FirstEnqueued when it was first enqueued: Unix ms, 0 if none
	// (an ended backoff or lock may still be there until collected).
	BackoffUntil, LockedUntil, FirstEnqueued int64
	// LockTime is the message's own lock time, 0 for the worker's.
	LockTime time.Duration
	// Requeue is the content of its pending requeue (messages-rq), nil
	// for none, and RequeueLockTime that requeue's own lock time.
	Requeue         []byte
	RequeueLockTime time.Duration
	// Meta is its stored metadata, nil for none.
	Meta []byte
	// Content is the stored content, read only when asked for; nil when
	// not read or not in the queue.
	Content []byte
	// Dead is the dead letter of the same id, read only when asked for;
	// nil for none.
	Dead *DeadRecord
	// Policy is the message's own policy (§14), nil for none.
	Policy *Policy
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first (§17), read only when asked for (ReadErrors).
	AttemptErrors []AttemptError
	// Priority is the message's priority (§18): PriorityHigh,
	// PriorityLow, or "" for normal.
	Priority string
}

// What ReadMessages reads beyond each message's status.
const (
	// ReadContent reads the stored content.
	ReadContent = "c"
	// ReadDead reads the dead letter of the same id.
	ReadDead = "d"
	// ReadErrors reads the errors of its failed attempts (§17).
	ReadErrors = "e"
)

// ReadMessages answers the server's time (Unix ms) and what the queue
// holds of each message of ids, in order, in one script call: the status
// and what goes with it, plus what want asks for (ReadContent, ReadDead,
// ReadErrors, joined).
func ReadMessages(ctx context.Context, r Redis, keys []string, want string, ids []string) (int64, []MessageRead, error) {
	args := make([]any, 0, 1+len(ids))
	args = append(args, want)
	for _, id := range ids {
		args = append(args, id)
	}
	reply, err := msgStatusScript.Run(ctx, r, keys, args...).Slice()
	if err != nil {
		return 0, nil, err
	}
	return parseMessageReads(reply, ids)
}

// parseMessageReads parses msg-status.lua's reply for ids.
func parseMessageReads(reply []any, ids []string) (int64, []MessageRead, error) {
	if len(reply) != len(ids)+1 {
		return 0, nil, fmt.Errorf("%w: message status answered %d entries for %d ids", ErrUnexpectedReply, len(reply)-1, len(ids))
	}
	now, _ := reply[0].(int64)
	reads := make([]MessageRead, len(ids))
	for i, id := range ids {
		e, _ := reply[i+1].([]any)
		if len(e) != 14 {
			return 0, nil, fmt.Errorf("%w: message status entry %v", ErrUnexpectedReply, reply[i+1])
		}
		m := &reads[i]
		m.Status, _ = e[0].(string)
		m.Attempts, _ = e[1].(int64)
		m.BackoffUntil, _ = e[2].(int64)
		m.FirstEnqueued, _ = e[3].(int64)
		m.LockedUntil, _ = e[4].(int64)
		m.LockTime = msDuration(e[5])
		m.Requeue = bulk(e[6])
		m.RequeueLockTime = msDuration(e[7])
		m.Meta = bulk(e[8])
		m.Content = bulk(e[9])
		m.Priority = string(bulk(e[13]))
		if rec := bulk(e[10]); rec != nil {
			d, err := parseDeadRecord(id, string(rec))
			if err != nil {
				return 0, nil, err
			}
			m.Dead = &d
		}
		if raw := bulk(e[11]); raw != nil {
			if p, err := DecodePolicy(raw); err == nil {
				m.Policy = &p
			}
		}
		if raw := bulk(e[12]); raw != nil {
			var ok bool
			if m.AttemptErrors, ok = parseAttemptErrors(string(raw)); !ok {
				return 0, nil, fmt.Errorf("%w: message %q has damaged attempt errors", ErrUnexpectedReply, id)
			}
		}
	}
	return now, reads, nil
}

// bulk is a bulk string of a script's reply, nil for false (a Lua false
// arrives as a nil reply).
func bulk(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return nil
}

// msDuration is a number of milliseconds of a script's reply as a
// duration.
func msDuration(v any) time.Duration {
	n, _ := v.(int64)
	return time.Duration(n) * time.Millisecond
}

// Counts are a queue's counts (docs/protocol.md §10), read in O(1): exact
// when only this library writes the queue, but for entries due and not
// yet woken (counts.lua says which).
type Counts struct {
	// Total is the number of messages in the queue.
	Total int64
	// Locked is the number of lock entries.
	Locked int64
	// Backoff is the number of backoff entries less those of messages in
	// a dedupe window (which count as Done).
	Backoff int64
	// Done is the number of ids in done.
	Done int64
	// Queued is Total less Locked, Backoff and Done, at least 0.
	Queued int64
	// Dead is the number of dead letters (§11).
	Dead int64
	// Paused tells whether the queue is paused (pause.lua).
	Paused bool
	// Results is the number of results kept (§21).
	Results int64
	// PrioHigh and PrioLow are the lengths of prio-hi and prio-lo
	// (§18): at most the ready messages of each priority.
	PrioHigh, PrioLow int64
	// Handoffs is the length of handoffs: records waiting for a relay
	// (§22).
	Handoffs int64
	// SlotsHeld and Parked are the concurrency slots held in the queue
	// and the messages parked for want of one of their key (§19).
	SlotsHeld, Parked int64
	// Limited is set when the queue has limits (§19).
	Limited bool
}

// QueueCounts reads the queue's counts in one script call, by the formula
// that dequeue.lua's queue size uses too (counts.lua).
func QueueCounts(ctx context.Context, r Redis, keys []string) (Counts, error) {
	reply, err := countsScript.Run(ctx, r, keys).Int64Slice()
	if err != nil {
		return Counts{}, err
	}
	if len(reply) != 14 {
		return Counts{}, fmt.Errorf("%w: queue counts %v", ErrUnexpectedReply, reply)
	}
	return Counts{Total: reply[0], Locked: reply[1], Backoff: reply[2], Done: reply[3], Queued: reply[4],
		Dead: reply[5], Paused: reply[6] == 1, Results: reply[7], PrioHigh: reply[8], PrioLow: reply[9],
		Handoffs: reply[10], SlotsHeld: reply[11], Parked: reply[12], Limited: reply[13] == 1}, nil
}

// Pause pauses the queue (pause true) or resumes it, in one script call
// (pause.lua), and answers whether its state changed.
func Pause(ctx context.Context, r Redis, keys []string, pause bool) (bool, error) {
	arg := "0"
	if pause {
		arg = "1"
	}
	n, err := pauseScript.Run(ctx, r, keys, arg).Int64()
	return n == 1, err
}

// Delete deletes the messages of ids, whatever their status, in one script
// call (delete.lua), and answers, per id, whether it was in the queue.
func Delete(ctx context.Context, r Redis, keys []string, ids []string) ([]bool, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	reply, err := deleteScript.Run(ctx, r, keys, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(reply) != len(ids) {
		return nil, fmt.Errorf("%w: delete answered %d of %d", ErrUnexpectedReply, len(reply), len(ids))
	}
	existed := make([]bool, len(ids))
	for i, n := range reply {
		existed[i] = n == 1
	}
	return existed, nil
}

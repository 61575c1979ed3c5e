package protocol

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// DeadRecord is one dead letter as dead-letters.lua answers it
// (docs/protocol.md §11).
type DeadRecord struct {
	// ID is the message id.
	ID string
	// Data is the message as it was stored.
	Data []byte
	// Reason is "dead" (an error outcome after the last attempt, or one
	// marked final; "failed" before) or "quarantined" (handed out too
	// often without an outcome).
	Reason string
	// Error is the last error's text.
	Error string
	// Attempts counts the message's hand-outs.
	Attempts int64
	// FirstEnqueued and Died are Unix ms by the server's clock;
	// FirstEnqueued is 0 when unknown.
	FirstEnqueued, Died int64
	// LockTime is the message's own lock time, 0 for the worker's.
	LockTime time.Duration
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first (§17); empty in dead letters of versions before.
	AttemptErrors []AttemptError
	// Policy is the message's own policy (§14), nil for none.
	Policy *Policy
}

// AttemptError is one failed attempt's error (§17).
type AttemptError struct {
	// Attempt is the attempt's number, from 1.
	Attempt int64
	// At is when it failed, Unix ms by the server's clock.
	At int64
	// Error is its error text, cut to 1 KiB.
	Error string
}

// unpack3 reads the items of the scripts' pack (prelude.lua): each after
// its length in three little-endian bytes.
func unpack3(s string) ([]string, bool) {
	var items []string
	for len(s) > 0 {
		if len(s) < 3 {
			return nil, false
		}
		n := int(s[0]) | int(s[1])<<8 | int(s[2])<<16
		if n > len(s)-3 {
			return nil, false
		}
		items, s = append(items, s[3:3+n]), s[3+n:]
	}
	return items, true
}

// parseAttemptErrors reads attempt-errors.lua's list.
func parseAttemptErrors(s string) ([]AttemptError, bool) {
	items, ok := unpack3(s)
	if !ok || len(items)%3 != 0 {
		return nil, false
	}
	var out []AttemptError
	for i := 0; i+2 < len(items); i += 3 {
		n, err1 := strconv.ParseInt(items[i], 10, 64)
		at, err2 := strconv.ParseInt(items[i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		out = append(out, AttemptError{Attempt: n, At: at, Error: items[i+2]})
	}
	return out, true
}

// parseDeadRecord reads pack4's items (outcome.lua, bury).
func parseDeadRecord(id, s string) (DeadRecord, error) {
	var items []string
	for len(s) > 0 {
		if len(s) < 4 {
			return DeadRecord{}, fmt.Errorf("%w: dead letter %q is cut short", ErrUnexpectedReply, id)
		}
		n := int(binary.LittleEndian.Uint32([]byte(s[:4])))
		if n > len(s)-4 {
			return DeadRecord{}, fmt.Errorf("%w: dead letter %q is cut short", ErrUnexpectedReply, id)
		}
		items, s = append(items, s[4:4+n]), s[4+n:]
	}
	// Seven items before the attempts' errors were kept (§17); the
	// message's own policy (§14) is the ninth when it has one; items after
	// are left for versions to come.
	if len(items) < 7 {
		return DeadRecord{}, fmt.Errorf("%w: dead letter %q has %d fields", ErrUnexpectedReply, id, len(items))
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	d := DeadRecord{ID: id, Data: []byte(items[0]), Reason: items[1], Error: items[2],
		Attempts: num(items[3]), FirstEnqueued: num(items[4]), Died: num(items[5]),
		LockTime: time.Duration(num(items[6])) * time.Millisecond}
	if len(items) > 7 {
		var ok bool
		if d.AttemptErrors, ok = parseAttemptErrors(items[7]); !ok {
			return DeadRecord{}, fmt.Errorf("%w: dead letter %q has damaged attempt errors", ErrUnexpectedReply, id)
		}
	}
	if len(items) > 8 && items[8] != "" {
		// The message's own policy (§14); one of an unknown layout is
		// left out rather than failing the whole page.
		if p, err := DecodePolicy([]byte(items[8])); err == nil {
			d.Policy = &p
		}
	}
	return d, nil
}

// DeadLetterPage answers up to limit dead letters, newest first (by the
// time they died, then by id, as dead-index orders them), starting after
// the letter that died at afterDied (Unix ms) with id afterID, whether or
// not it is still there; afterDied < 0 starts at the newest. Each
// record's Died is its place in dead-index, to continue from.
func DeadLetterPage(ctx context.Context, r Redis, keys []string, limit int, afterDied int64, afterID string) ([]DeadRecord, error) {
	died := ""
	if afterDied >= 0 {
		died = strconv.FormatInt(afterDied, 10)
	}
	reply, err := deadScript.Run(ctx, r, keys, "page", max(0, limit), died, afterID).Slice()
	if err != nil {
		return nil, err
	}
	if len(reply)%3 != 0 {
		return nil, fmt.Errorf("%w: dead letters %v", ErrUnexpectedReply, reply)
	}
	out := make([]DeadRecord, 0, len(reply)/3)
	for i := 0; i+2 < len(reply); i += 3 {
		id, _ := reply[i].(string)
		score, _ := reply[i+1].(string)
		rec, _ := reply[i+2].(string)
		d, err := parseDeadRecord(id, rec)
		if err != nil {
			return nil, err
		}
		if d.Died, err = strconv.ParseInt(score, 10, 64); err != nil {
			return nil, fmt.Errorf("%w: dead letter %q died at %q", ErrUnexpectedReply, id, score)
		}
		out = append(out, d)
	}
	return out, nil
}

// DeadLetter answers the dead letter of id, and false when there is none.
func DeadLetter(ctx context.Context, r Redis, keys []string, id string) (DeadRecord, bool, error) {
	reply, err := deadScript.Run(ctx, r, keys, "get", id).Slice()
	if err != nil {
		return DeadRecord{}, false, err
	}
	if len(reply) != 1 {
		return DeadRecord{}, false, fmt.Errorf("%w: dead letter %v", ErrUnexpectedReply, reply)
	}
	rec, ok := reply[0].(string)
	if !ok {
		return DeadRecord{}, false, nil
	}
	d, err := parseDeadRecord(id, rec)
	return d, err == nil, err
}

// The answers of RequeueDead, per id.
const (
	// Requeued: the dead letter is a fresh message again.
	Requeued Code = "requeued"
	// DeadMissing: there was no such dead letter.
	DeadMissing Code = "missing"
	// DeadExists: the queue holds a message of that id; nothing changed.
	DeadExists Code = "exists"
)

// RequeueDead turns dead letters back into fresh messages under the same
// ids, and answers per id Requeued, DeadMissing or DeadExists.
func RequeueDead(ctx context.Context, r Redis, keys []string, ids []string) ([]Code, error) {
	args := make([]any, 0, 1+len(ids))
	args = append(args, "requeue")
	for _, id := range ids {
		args = append(args, id)
	}
	reply, err := deadScript.Run(ctx, r, keys, args...).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(reply) != len(ids) {
		return nil, fmt.Errorf("%w: requeue answered %d of %d", ErrUnexpectedReply, len(reply), len(ids))
	}
	codes := make([]Code, len(reply))
	for i, c := range reply {
		codes[i] = Code(c)
	}
	return codes, nil
}

// DeleteDead deletes dead letters by id and answers, per id, whether
// there was one.
func DeleteDead(ctx context.Context, r Redis, keys []string, ids []string) ([]bool, error) {
	args := make([]any, 0, 1+len(ids))
	args = append(args, "delete")
	for _, id := range ids {
		args = append(args, id)
	}
	reply, err := deadScript.Run(ctx, r, keys, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(reply) != len(ids) {
		return nil, fmt.Errorf("%w: delete answered %d of %d", ErrUnexpectedReply, len(reply), len(ids))
	}
	out := make([]bool, len(reply))
	for i, n := range reply {
		out[i] = n == 1
	}
	return out, nil
}

// DeleteAllDead deletes every dead letter of the queue and answers how
// many there were.
func DeleteAllDead(ctx context.Context, r Redis, keys []string) (int64, error) {
	return deadScript.Run(ctx, r, keys, "delete-all").Int64()
}

// DeadIDs answers up to limit dead-letter ids, oldest first, from offset.
func DeadIDs(ctx context.Context, r Redis, keys []string, offset, limit int) ([]string, error) {
	reply, err := deadScript.Run(ctx, r, keys, "ids", max(0, offset), max(0, limit)).StringSlice()
	if err != nil {
		return nil, err
	}
	return reply, nil
}

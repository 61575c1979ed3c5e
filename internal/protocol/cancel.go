package protocol

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// CancelAnswer is cancel.lua's answer about one message (docs/protocol.md
// §20).
type CancelAnswer string

// The answers of a cancel.
const (
	// CancelRemoved: the message was queued (in backoff or not): it was
	// deleted and never runs.
	CancelRemoved CancelAnswer = "removed"
	// CancelSignalled: the message is being handled: its cancel stands
	// (cancels), its handler was told on the queue's cancel channel, and
	// its outcome will be recorded as cancelled.
	CancelSignalled CancelAnswer = "signalled"
	// CancelDone: the message is done already; nothing was changed.
	CancelDone CancelAnswer = "done"
	// CancelUnknown: the queue does not hold the message.
	CancelUnknown CancelAnswer = "unknown"
)

// CancelChannel is the Pub/Sub channel on which cancels of the queue's
// handled messages are published, each message the id (§20): the
// queue's key prefix and "cancel".
func CancelChannel(queue string, cluster bool) string {
	return keys.QueuePrefix(queue, cluster) + "cancel"
}

// Cancel cancels message id in one script call (cancel.lua).
func Cancel(ctx context.Context, r Redis, keys []string, id string) (CancelAnswer, error) {
	v, err := cancelScript.Run(ctx, r, keys, id).Result()
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		switch a := CancelAnswer(x); a {
		case CancelSignalled, CancelDone, CancelUnknown:
			return a, nil
		}
	case []any: // delete.lua's reply: the queued message was deleted
		if len(x) == 1 {
			if n, _ := x[0].(int64); n == 1 {
				return CancelRemoved, nil
			}
			return CancelUnknown, nil
		}
	}
	return "", fmt.Errorf("%w: cancel answered %v", ErrUnexpectedReply, v)
}

// MaxProgressNote bounds a progress note, in bytes: a longer one is cut.
const MaxProgressNote = 256

// EncodeProgress is a progress as renew.lua takes it: "<n> <note>".
func EncodeProgress(n float64, note string) string {
	if len(note) > MaxProgressNote {
		note = note[:MaxProgressNote]
	}
	return strconv.FormatFloat(n, 'g', -1, 64) + " " + note
}

// Progress is a handler's latest progress as stored (§20).
type Progress struct {
	N    float64
	Note string
	At   time.Time // by the server's clock
}

// parseTagged splits a tagged entry '<udt>:<value>' and answers its value
// when the tag is udt.
func parseTagged(v string, udt int64) (string, bool) {
	tag, value, ok := strings.Cut(v, ":")
	if !ok {
		return "", false
	}
	t, err := strconv.ParseInt(tag, 10, 64)
	if err != nil || t != udt {
		return "", false
	}
	return value, true
}

// ParseProgress reads a progress entry '<udt>:<ms> <n> <note>' of the
// message first enqueued at udt; false for none or a stale one.
func ParseProgress(v string, udt int64) (Progress, bool) {
	value, ok := parseTagged(v, udt)
	if !ok {
		return Progress{}, false
	}
	at, rest, _ := strings.Cut(value, " ")
	n, note, _ := strings.Cut(rest, " ")
	ms, err1 := strconv.ParseInt(at, 10, 64)
	x, err2 := strconv.ParseFloat(n, 64)
	if err1 != nil || err2 != nil {
		return Progress{}, false
	}
	return Progress{N: x, Note: note, At: time.UnixMilli(ms)}, true
}

// JobState is what §20 keeps of one message: its progress and the time a
// cancel of it was asked.
type JobState struct {
	Progress        *Progress
	CancelRequested time.Time // zero for none
}

// ReadJobState reads the progress and cancel entries of message id, first
// enqueued at udt (Unix ms), in one round trip.
func ReadJobState(ctx context.Context, r Redis, queueKeys []string, id string, udt int64) (JobState, error) {
	p := r.Pipeline()
	prog := p.HGet(ctx, queueKeys[keys.Progress], id)
	canc := p.HGet(ctx, queueKeys[keys.Cancels], id)
	_, _ = p.Exec(ctx)
	return jobStateOf(prog, canc, udt)
}

// jobStateOf is the job state of a message first enqueued at udt, from
// the replies of its progress and cancel entries.
func jobStateOf(prog, canc *redis.StringCmd, udt int64) (JobState, error) {
	var s JobState
	for _, c := range []interface{ Err() error }{prog, canc} {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return s, err
		}
	}
	if x, ok := ParseProgress(prog.Val(), udt); ok {
		s.Progress = &x
	}
	if v, ok := parseTagged(canc.Val(), udt); ok {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.CancelRequested = time.UnixMilli(ms)
		}
	}
	return s, nil
}

// ReadMessageState is ReadMessages of the one message id and ReadJobState
// of it, in one round trip: the script call and the reads of its progress
// and cancel entries go in one pipeline. The entries are those of the
// incarnation the script read (its first-enqueue time); a message the
// queue does not hold has none.
func ReadMessageState(ctx context.Context, r Redis, queueKeys []string, want, id string) (int64, MessageRead, JobState, error) {
	var st *redis.Cmd
	var prog, canc *redis.StringCmd
	send := func(eval func(p redis.Pipeliner) *redis.Cmd) {
		p := r.Pipeline()
		st = eval(p)
		prog = p.HGet(ctx, queueKeys[keys.Progress], id)
		canc = p.HGet(ctx, queueKeys[keys.Cancels], id)
		_, _ = p.Exec(ctx) // errors stay on each command
	}
	send(func(p redis.Pipeliner) *redis.Cmd { return msgStatusScript.EvalSha(ctx, p, queueKeys, want, id) })
	if ErrorCode(st.Err()) == NoScript {
		send(func(p redis.Pipeliner) *redis.Cmd { return msgStatusScript.Eval(ctx, p, queueKeys, want, id) })
	}
	reply, err := st.Slice()
	if err != nil {
		return 0, MessageRead{}, JobState{}, err
	}
	now, reads, err := parseMessageReads(reply, []string{id})
	if err != nil {
		return 0, MessageRead{}, JobState{}, err
	}
	m := reads[0]
	if m.Status == "" || m.FirstEnqueued <= 0 {
		return now, m, JobState{}, nil
	}
	s, err := jobStateOf(prog, canc, m.FirstEnqueued)
	return now, m, s, err
}

package mq

import (
	"context"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// MessageStatus is the state of one message (docs/protocol.md §2): the one
// thing this package calls a status. The values are Carmine's status
// names.
type MessageStatus string

// The eight statuses of a message.
const (
	// StatusNone: the message is not in the queue (never was, or was
	// handled and garbage collected). Its String is "nil".
	StatusNone MessageStatus = ""
	// StatusQueued: waiting for a handler.
	StatusQueued MessageStatus = "queued"
	// StatusQueuedWithBackoff: waiting, but not to be handled before its
	// backoff ends.
	StatusQueuedWithBackoff MessageStatus = "queued-with-backoff"
	// StatusLocked: with a handler.
	StatusLocked MessageStatus = "locked"
	// StatusLockedWithRequeue: with a handler, and to be queued again
	// when done.
	StatusLockedWithRequeue MessageStatus = "locked-with-requeue"
	// StatusDoneAwaitingGC: handled, waiting to be garbage collected.
	StatusDoneAwaitingGC MessageStatus = "done-awaiting-gc"
	// StatusDoneWithBackoff: handled, and kept until its dedupe backoff
	// ends; enqueues of the same id are refused until then.
	StatusDoneWithBackoff MessageStatus = "done-with-backoff"
	// StatusDoneWithRequeue: handled, and to be queued again (once any
	// backoff ends).
	StatusDoneWithRequeue MessageStatus = "done-with-requeue"
)

// String returns the status name, "nil" for StatusNone.
func (s MessageStatus) String() string {
	if s == StatusNone {
		return "nil"
	}
	return string(s)
}

// MessageInfo is what a queue holds of one message: its content, its
// status and what goes with it. [Inspector.Message] reads one, and the
// pages of [Inspector.QueueMessages] and [Inspector.QueueContent] hold
// them. Times are by the Redis server's clock.
type MessageInfo struct {
	// ID is the message id.
	ID string
	// Data is the message as stored.
	Data []byte
	// Value is the message decoded by the client's codec into an untyped
	// value; nil when DecodeErr is set.
	Value any
	// DecodeErr is set (wrapping ErrDecode) when Data cannot be decoded.
	DecodeErr error
	// Status is the message's status; StatusNone when the queue does not
	// hold it (only Inspector.Message answers such a message).
	Status MessageStatus
	// Attempts is how many times a handler was given the message.
	Attempts int64
	// Backoff is the time left in its backoff, 0 if none.
	Backoff time.Duration
	// Age is the time since the message was first enqueued.
	Age time.Duration
	// FirstEnqueued is when the message was first enqueued; zero when
	// unknown.
	FirstEnqueued time.Time
	// BackoffUntil is when its backoff (a delay, a retry's wait or a
	// dedupe window) ends, and LockedUntil when the lock of its handling
	// runs out; zero when there is none, or when it ended already.
	BackoffUntil time.Time
	LockedUntil  time.Time
	// LockTime is the message's own lock time (EnqueueOptions.LockTime),
	// 0 for the worker's.
	LockTime time.Duration
	// Metadata is the message's metadata (EnqueueOptions.Metadata).
	Metadata map[string]string
	// Policy is the message's own policy (EnqueueOptions MaxAttempts,
	// Backoff, Timeout, UniqueFor), nil for none.
	Policy *Policy
	// Priority is the message's priority (EnqueueOptions.Priority).
	Priority Priority
	// Requeue is the content waiting to replace the message once its
	// handling or backoff ends (a "-with-requeue" status); nil for none.
	Requeue *PendingRequeue
	// DeadLetter is the dead letter of the same id, if the queue keeps
	// one: read by Inspector.Message only. A message may be a dead letter
	// and, enqueued again since, in the queue too.
	DeadLetter *DeadLetter
	// AttemptErrors are the errors of the message's latest failed
	// attempts (at most five, each cut to 1 KiB), oldest first, nil for
	// none: read by Inspector.Message only. Once it is a dead letter they
	// are DeadLetter.AttemptErrors.
	AttemptErrors []AttemptError
	// Progress is the latest progress its handler reported
	// (Message.Progress), nil for none: read by Inspector.Message only.
	Progress *Progress
	// CancelRequested is when a cancel of the message, being handled,
	// was asked (Client.Cancel); zero for none: read by Inspector.Message
	// only.
	CancelRequested time.Time
}

// PendingRequeue is the content an enqueue left to replace a message that
// was locked or in backoff when it came (docs/protocol.md §3).
type PendingRequeue struct {
	// Data is the content as stored; Value and DecodeErr are as in
	// MessageInfo.
	Data      []byte
	Value     any
	DecodeErr error
	// LockTime is the requeue's own lock time, 0 for the worker's.
	LockTime time.Duration
}

// MessageStatus returns the status of the message with the given id: the
// cheapest read of one message, which leaves its content in Redis.
func (in *Inspector) MessageStatus(ctx context.Context, queue, id string) (MessageStatus, error) {
	if err := in.validateIDIn(queue, id); err != nil {
		return "", err
	}
	_, reads, err := in.readMessages(ctx, queue, "", []string{id})
	if err != nil {
		return "", err
	}
	return MessageStatus(reads[0].Status), nil
}

// Message reads everything the queue holds of message id in one round
// trip: in one atomic script call its status, content, attempts, times,
// metadata, pending requeue, the errors of its latest failed attempts, and
// its dead letter if it has one; pipelined with it, for a message the
// queue holds, the latest progress its handler reported and when a cancel
// of it was asked (docs/protocol.md §20). A message the queue does not
// hold answers Status StatusNone, not an error, with its DeadLetter when
// there is one. Undecodable content is reported in DecodeErr.
func (in *Inspector) Message(ctx context.Context, queue, id string) (MessageInfo, error) {
	if err := in.validateIDIn(queue, id); err != nil {
		return MessageInfo{}, err
	}
	type answer struct {
		now   int64
		read  protocol.MessageRead
		state protocol.JobState
	}
	a, err := within(in.c, ctx, func(ctx context.Context) (answer, error) {
		now, r, s, err := protocol.ReadMessageState(ctx, in.c.rdb, in.c.keys(queue),
			protocol.ReadContent+protocol.ReadDead+protocol.ReadErrors, id)
		return answer{now, r, s}, err
	})
	if err != nil {
		return MessageInfo{}, fmt.Errorf("mq: message status in %q: %w", queue, redisError(err))
	}
	r := a.read
	m, ok := in.messageInfo(id, r.Content, r, a.now)
	if !ok {
		m = MessageInfo{ID: id}
	} else {
		m.AttemptErrors = attemptErrors(r.AttemptErrors)
		if p := a.state.Progress; p != nil {
			m.Progress = &Progress{N: p.N, Note: p.Note, At: p.At}
		}
		m.CancelRequested = a.state.CancelRequested
	}
	if r.Dead != nil {
		d := in.deadLetter(*r.Dead)
		m.DeadLetter = &d
	}
	return m, nil
}

// readMessages reads what the queue holds of each message of ids, in one
// script call, answering the server's time (Unix ms) and one read per id.
func (in *Inspector) readMessages(ctx context.Context, queue, want string, ids []string) (int64, []protocol.MessageRead, error) {
	type answer struct {
		now   int64
		reads []protocol.MessageRead
	}
	a, err := within(in.c, ctx, func(ctx context.Context) (answer, error) {
		now, reads, err := protocol.ReadMessages(ctx, in.c.rdb, in.c.keys(queue), want, ids)
		return answer{now, reads}, err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("mq: message status in %q: %w", queue, redisError(err))
	}
	return a.now, a.reads, nil
}

// messageInfo is message id, stored as data, as read at server time now;
// false when the queue does not hold it (collected since a scan read it).
func (in *Inspector) messageInfo(id string, data []byte, r protocol.MessageRead, now int64) (MessageInfo, bool) {
	if MessageStatus(r.Status) == StatusNone {
		return MessageInfo{}, false
	}
	m := MessageInfo{
		ID:       id,
		Data:     data,
		Status:   MessageStatus(r.Status),
		Attempts: r.Attempts,
		LockTime: r.LockTime,
		Metadata: decodeMetadata(r.Meta),
		Policy:   publicPolicy(r.Policy),
		Priority: priorityOf(r.Priority),
	}
	if r.BackoffUntil > now {
		m.Backoff = time.Duration(r.BackoffUntil-now) * time.Millisecond
		m.BackoffUntil = time.UnixMilli(r.BackoffUntil)
	}
	if r.LockedUntil > now {
		m.LockedUntil = time.UnixMilli(r.LockedUntil)
	}
	if r.FirstEnqueued > 0 {
		m.Age = time.Duration(now-r.FirstEnqueued) * time.Millisecond
		m.FirstEnqueued = time.UnixMilli(r.FirstEnqueued)
	}
	m.DecodeErr = decode(in.c.cfg.Codec, m.Data, &m.Value)
	if r.Requeue != nil {
		p := &PendingRequeue{Data: r.Requeue, LockTime: r.RequeueLockTime}
		p.DecodeErr = decode(in.c.cfg.Codec, p.Data, &p.Value)
		m.Requeue = p
	}
	return m, true
}

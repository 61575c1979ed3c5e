package main

// Reading messages: one message comes from the library's
// Inspector.Message, a page of a queue from Inspector.QueueMessages; both
// answer the status, content, pending requeue and the rest in one script
// call, through the public API only.

import (
	"fmt"
	"time"

	"github.com/gocarmine/mq"
)

// messageView is one message as mqctl shows it; its JSON field names are
// stable, for scripts.
type messageView struct {
	Queue    string `json:"queue"`
	ID       string `json:"id"`
	Status   string `json:"status"` // Carmine's status name, "nil" when not in the queue
	Attempts int64  `json:"attempts"`
	AgeMS    int64  `json:"age_ms"`
	// BackoffMS is the time left in its backoff.
	BackoffMS int64 `json:"backoff_ms"`
	// LockedUntil is when the lock of its handling runs out, if locked.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// LockTimeMS is its own lock time, 0 for the worker's.
	LockTimeMS int64 `json:"lock_time_ms"`
	// Metadata is the message's metadata, if any.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Policy is the message's own policy (EnqueueOptions MaxAttempts,
	// Backoff, Timeout, UniqueFor), if any.
	Policy *policyView `json:"policy,omitempty"`
	// Priority is its priority, "high", "normal" or "low"
	// (EnqueueOptions.Priority).
	Priority string `json:"priority"`
	// DeadLetter tells that the queue keeps a dead letter of the same id
	// (mqctl dead show QUEUE ID shows it).
	DeadLetter bool `json:"dead_letter,omitempty"`
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first, while it is in the queue (a dead letter's are in dead show).
	AttemptErrors []attemptErrorView `json:"attempt_errors,omitempty"`
	contentView
	// Requeue is the content waiting to be queued again once this
	// handling or backoff ends (a "-with-requeue" status), if any.
	Requeue *contentView `json:"requeue,omitempty"`
	// Progress is the latest progress its handler reported, if any.
	Progress *progressView `json:"progress,omitempty"`
	// CancelRequested is when a cancel of it, being handled, was asked.
	CancelRequested time.Time `json:"cancel_requested,omitzero"`
}

// progressView is a handler's latest progress report (mq.Progress).
type progressView struct {
	N    float64   `json:"n"`
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at"`
}

// policyView is a message's own policy as mqctl shows it.
type policyView struct {
	// MaxAttempts bounds its attempts (0: the worker's, negative: none).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Backoff is its retry backoff: kind ("fixed" or "exp"), base and
	// cap in ms, jitter from 0 to 1.
	Backoff *backoffView `json:"backoff,omitempty"`
	// TimeoutMS bounds each handling, UniqueForMS is its dedupe window.
	TimeoutMS   int64 `json:"timeout_ms,omitempty"`
	UniqueForMS int64 `json:"unique_for_ms,omitempty"`
	// Text is the policy in words.
	Text string `json:"text"`
}

// backoffView is a message's own retry backoff.
type backoffView struct {
	Kind   string  `json:"kind"`
	BaseMS int64   `json:"base_ms"`
	MaxMS  int64   `json:"max_ms,omitempty"`
	Jitter float64 `json:"jitter,omitempty"`
}

// newPolicyView is the view of a message's policy, nil for none.
func newPolicyView(p *mq.Policy) *policyView {
	if p == nil {
		return nil
	}
	v := &policyView{MaxAttempts: p.MaxAttempts, TimeoutMS: p.Timeout.Milliseconds(),
		UniqueForMS: p.UniqueFor.Milliseconds(), Text: p.String()}
	if b := p.Backoff; b != nil {
		v.Backoff = &backoffView{Kind: string(b.Kind), BaseMS: b.Base.Milliseconds(), MaxMS: b.Max.Milliseconds(), Jitter: b.Jitter}
	}
	return v
}

// contentView is stored content and what the codec made of it.
type contentView struct {
	// Size is the stored size in bytes.
	Size int `json:"size"`
	// Content is the decoded value; null when undecodable.
	Content any `json:"content"`
	// DecodeError says why the stored bytes could not be decoded.
	DecodeError string `json:"decode_error,omitempty"`
	// Data is the stored bytes (base64 in JSON).
	Data []byte `json:"data"`
}

// newContent decodes stored bytes with the library's codec, which refuses
// malformed or hostile MessagePack with an error, and turns a panic into
// one too.
func newContent(data []byte) contentView {
	c := contentView{Size: len(data), Data: data}
	var v any
	if err := safeDecode(data, &v); err != nil {
		c.DecodeError = err.Error()
		return c
	}
	c.Content = jsonValue(v)
	return c
}

// safeDecode is the codec's Unmarshal with any panic turned into an
// error.
func safeDecode(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: codec panicked: %v", mq.ErrDecode, r)
		}
	}()
	if err := (mq.MsgpackCodec{}).Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", mq.ErrDecode, err)
	}
	return nil
}

// newMessageView is the view of one message as the library's inspector
// read it (Inspector.Message, or a page of Inspector.QueueMessages).
func newMessageView(queue string, m mq.MessageInfo) messageView {
	v := messageView{
		Queue: queue, ID: m.ID, Status: m.Status.String(), Attempts: m.Attempts,
		AgeMS: max(m.Age.Milliseconds(), 0), BackoffMS: m.Backoff.Milliseconds(),
		LockTimeMS: m.LockTime.Milliseconds(), Metadata: m.Metadata,
		contentView: decodedContent(m.Data, m.Value, m.DecodeErr),
		DeadLetter:  m.DeadLetter != nil,
		Policy:      newPolicyView(m.Policy),
		Priority:    m.Priority.String(),
	}
	if !m.LockedUntil.IsZero() {
		v.LockedUntil = m.LockedUntil.UTC()
	}
	if r := m.Requeue; r != nil {
		c := decodedContent(r.Data, r.Value, r.DecodeErr)
		v.Requeue = &c
	}
	for _, e := range m.AttemptErrors {
		v.AttemptErrors = append(v.AttemptErrors, attemptErrorView{Attempt: e.Attempt, At: e.At.UTC(), Error: e.Error})
	}
	if p := m.Progress; p != nil {
		v.Progress = &progressView{N: p.N, Note: p.Note, At: p.At.UTC()}
	}
	if !m.CancelRequested.IsZero() {
		v.CancelRequested = m.CancelRequested.UTC()
	}
	return v
}

// decodedContent is stored content as the library's codec decoded it.
func decodedContent(data []byte, value any, decodeErr error) contentView {
	c := contentView{Size: len(data), Data: data}
	if decodeErr != nil {
		c.DecodeError = decodeErr.Error()
	} else {
		c.Content = jsonValue(value)
	}
	return c
}

// age is a view's age as a duration.
func (v messageView) age() time.Duration { return time.Duration(v.AgeMS) * time.Millisecond }

// backoff is a view's remaining backoff as a duration.
func (v messageView) backoff() time.Duration { return time.Duration(v.BackoffMS) * time.Millisecond }

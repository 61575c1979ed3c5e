package mqtest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// Enqueued returns every message queue holds, oldest first, with its
// options as the library reads them back (mq.Inspector.QueueContent):
// id, content (Data, and Value decoded by the client's codec), status,
// attempts, backoff, lock time, metadata, policy and priority. It fails
// the test when the queue cannot be read.
func Enqueued(t testing.TB, c *mq.Client, queue string) []mq.MessageInfo {
	t.Helper()
	msgs, err := c.Inspector().QueueContent(context.Background(), queue)
	if err != nil {
		t.Fatalf("mqtest: read queue %q: %v", queue, err)
	}
	return msgs
}

// Want describes a message a test expects in a queue. Its zero fields
// match anything, but Priority, which is matched always (its zero value is
// mq.PriorityNormal), so a Want{} matches any message of normal priority.
type Want struct {
	// ID, when not "", is the message id.
	ID string
	// Value, when not nil, is the content: it matches a message whose
	// content decodes, by the client's codec into an untyped value, to
	// what Value's encoding decodes to, so a struct matches the message
	// enqueued from an equal struct.
	Value any
	// Metadata, when not nil, are entries the message's metadata must hold
	// (it may hold more).
	Metadata map[string]string
	// Priority is the message's priority.
	Priority mq.Priority
	// Policy, when not nil, is the message's own policy, field by field.
	Policy *mq.Policy
	// InBackoff, when true, asks for a message waiting out a backoff (a
	// delay, a retry's wait, a dedupe window).
	InBackoff bool
	// Status, when not "", is the message's status.
	Status mq.MessageStatus
}

// RequireEnqueued fails the test unless queue holds, for each of wants, a
// message that matches it, each message matching at most one want: the
// wants are taken in order, each by the oldest message left that matches
// it. The queue may hold more messages. It returns the matching messages,
// in the order of wants.
func RequireEnqueued(t testing.TB, c *mq.Client, queue string, wants ...Want) []mq.MessageInfo {
	t.Helper()
	msgs := Enqueued(t, c, queue)
	taken := make([]bool, len(msgs))
	out := make([]mq.MessageInfo, 0, len(wants))
	for i, w := range wants {
		want, err := w.decoded(c.Codec())
		if err != nil {
			t.Fatalf("mqtest: want %d: %v", i, err)
		}
		found := -1
		for j, m := range msgs {
			if !taken[j] && want.matches(m) {
				found = j
				break
			}
		}
		if found < 0 {
			t.Fatalf("mqtest: queue %q holds no message matching want %d %s; it holds:\n%s",
				queue, i, w, describe(msgs, taken))
			return out
		}
		taken[found] = true
		out = append(out, msgs[found])
	}
	return out
}

// RequireEmpty fails the test unless queue holds no message.
func RequireEmpty(t testing.TB, c *mq.Client, queue string) {
	t.Helper()
	if msgs := Enqueued(t, c, queue); len(msgs) > 0 {
		t.Fatalf("mqtest: queue %q holds %d messages, want none:\n%s", queue, len(msgs), describe(msgs, nil))
	}
}

// wanted is a Want with its Value turned into what the codec reads back.
type wanted struct {
	Want
	value any    // Value as the codec reads it back
	raw   []byte // Value when it is an mq.Raw, compared as bytes
	isRaw bool
}

func (w Want) decoded(codec mq.Codec) (wanted, error) {
	out := wanted{Want: w}
	if w.Value == nil {
		return out, nil
	}
	if raw, ok := w.Value.(mq.Raw); ok {
		out.raw, out.isRaw = raw, true
		return out, nil
	}
	data, err := codec.Marshal(w.Value)
	if err != nil {
		return out, fmt.Errorf("encode Value: %w", err)
	}
	if err := codec.Unmarshal(data, &out.value); err != nil {
		return out, fmt.Errorf("decode Value: %w", err)
	}
	return out, nil
}

func (w wanted) matches(m mq.MessageInfo) bool {
	if w.ID != "" && m.ID != w.ID {
		return false
	}
	if w.Status != "" && m.Status != w.Status {
		return false
	}
	if m.Priority != w.Priority {
		return false
	}
	if w.InBackoff && m.BackoffUntil.IsZero() {
		return false
	}
	if w.Value != nil {
		if w.isRaw {
			if string(w.raw) != string(m.Data) {
				return false
			}
		} else if m.DecodeErr != nil || !reflect.DeepEqual(w.value, m.Value) {
			return false
		}
	}
	for k, v := range w.Metadata {
		if got, ok := m.Metadata[k]; !ok || got != v {
			return false
		}
	}
	if w.Policy != nil && (m.Policy == nil || !reflect.DeepEqual(*w.Policy, *m.Policy)) {
		return false
	}
	return true
}

// String describes the want's set fields.
func (w Want) String() string {
	var b strings.Builder
	b.WriteString("{")
	sep := func() {
		if b.Len() > 1 {
			b.WriteString(" ")
		}
	}
	if w.ID != "" {
		sep()
		fmt.Fprintf(&b, "ID:%q", w.ID)
	}
	if w.Value != nil {
		sep()
		fmt.Fprintf(&b, "Value:%+v", w.Value)
	}
	if w.Metadata != nil {
		sep()
		fmt.Fprintf(&b, "Metadata:%v", w.Metadata)
	}
	sep()
	fmt.Fprintf(&b, "Priority:%s", w.Priority)
	if w.Policy != nil {
		sep()
		fmt.Fprintf(&b, "Policy:%+v", *w.Policy)
	}
	if w.InBackoff {
		sep()
		b.WriteString("InBackoff")
	}
	if w.Status != "" {
		sep()
		fmt.Fprintf(&b, "Status:%s", w.Status)
	}
	b.WriteString("}")
	return b.String()
}

// describe lists msgs, one a line, those taken marked.
func describe(msgs []mq.MessageInfo, taken []bool) string {
	if len(msgs) == 0 {
		return "\t(nothing)"
	}
	var b strings.Builder
	for i, m := range msgs {
		mark := ""
		if taken != nil && taken[i] {
			mark = " (matched an earlier want)"
		}
		value := any(m.Value)
		if m.DecodeErr != nil {
			value = m.Data
		}
		fmt.Fprintf(&b, "\t%s: %v status=%s priority=%s attempts=%d", m.ID, value, m.Status, m.Priority, m.Attempts)
		if !m.BackoffUntil.IsZero() {
			fmt.Fprintf(&b, " backoff=%s", m.Backoff)
		}
		if len(m.Metadata) > 0 {
			fmt.Fprintf(&b, " metadata=%v", m.Metadata)
		}
		if m.Policy != nil {
			fmt.Fprintf(&b, " policy=%+v", *m.Policy)
		}
		b.WriteString(mark + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

package main

// Reading messages. Pages of a queue come from the library's
// Client.QueueMessages. What the public API does not answer is read here,
// below it, by the library's key layout (internal/keys) and its status
// script (internal/protocol): one message's view (MessageStatus answers only
// the status), the content of pending requeues (no public call reads
// messages-rq), and the queues that hold only dead letters (QueueNames
// finds a queue by its messages hash). It is the only file that reaches
// below the public API.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
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
	contentView
	// Requeue is the content waiting to be queued again once this
	// handling or backoff ends (a "-with-requeue" status), if any.
	Requeue *contentView `json:"requeue,omitempty"`
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

// reader reads messages below the public API, in the client's key layout.
type reader struct {
	rdb     redis.UniversalClient
	cluster bool
}

// keys answers every key of queue, in the scripts' order.
func (r reader) keys(queue string) []string { return keys.All(queue, r.cluster) }

// views answers the views of the messages ids of queue, with the contents
// given (nil: read them), in one script call and one pipeline.
func (r reader) views(ctx context.Context, queue string, ids []string, data map[string][]byte) ([]messageView, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	now, infos, err := protocol.MessageStatuses(ctx, r.rdb, r.keys(queue), ids)
	if err != nil {
		return nil, fmt.Errorf("message status in %q: %w", queue, err)
	}
	// The stored content, then that of the pending requeues.
	ks := r.keys(queue)
	contents := make([]*redis.StringCmd, len(ids))
	if data == nil {
		_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				contents[i] = p.HGet(ctx, ks[keys.Messages], id)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("message content in %q: %w", queue, err)
		}
	}
	requeues, err := protocol.PendingRequeues(ctx, r.rdb, ks, ids)
	if err != nil {
		return nil, fmt.Errorf("requeue content in %q: %w", queue, err)
	}
	out := make([]messageView, 0, len(ids))
	for i, id := range ids {
		info := infos[i]
		v := messageView{Queue: queue, ID: id, Status: mq.Status(info.Status).String(), Attempts: info.Attempts}
		if info.FirstEnqueued > 0 {
			v.AgeMS = max(now-info.FirstEnqueued, 0)
		}
		if info.BackoffUntil > now {
			v.BackoffMS = info.BackoffUntil - now
		}
		if data != nil {
			v.contentView = newContent(data[id])
		} else if b, err := contents[i].Bytes(); err == nil {
			v.contentView = newContent(b)
		}
		if requeues[i] != nil && strings.HasSuffix(info.Status, "-with-requeue") {
			c := newContent(requeues[i])
			v.Requeue = &c
		}
		out = append(out, v)
	}
	return out, nil
}

// pageViews turns a page of the library's QueueMessages into views, with
// the content of each pending requeue read in one pipelined round trip.
func (r reader) pageViews(ctx context.Context, queue string, msgs []mq.MessageInfo) ([]messageView, error) {
	out := make([]messageView, len(msgs))
	var requeued []int
	for i, m := range msgs {
		out[i] = messageView{
			Queue: queue, ID: m.ID, Status: m.Status.String(), Attempts: m.Attempts,
			AgeMS: max(m.Age.Milliseconds(), 0), BackoffMS: m.Backoff.Milliseconds(),
			contentView: contentView{Size: len(m.Data), Data: m.Data},
		}
		if m.DecodeErr != nil {
			out[i].DecodeError = m.DecodeErr.Error()
		} else {
			out[i].Content = jsonValue(m.Value)
		}
		if strings.HasSuffix(string(m.Status), "-with-requeue") {
			requeued = append(requeued, i)
		}
	}
	if len(requeued) == 0 {
		return out, nil
	}
	ids := make([]string, len(requeued))
	for j, i := range requeued {
		ids[j] = out[i].ID
	}
	contents, err := protocol.PendingRequeues(ctx, r.rdb, r.keys(queue), ids)
	if err != nil {
		return nil, fmt.Errorf("requeue content in %q: %w", queue, err)
	}
	for j, i := range requeued {
		if contents[j] != nil {
			c := newContent(contents[j])
			out[i].Requeue = &c
		}
	}
	return out, nil
}

// age is a view's age as a duration.
func (v messageView) age() time.Duration { return time.Duration(v.AgeMS) * time.Millisecond }

// backoff is a view's remaining backoff as a duration.
func (v messageView) backoff() time.Duration { return time.Duration(v.BackoffMS) * time.Millisecond }

// queueNames answers the library's QueueNames: queues with messages or
// dead letters, or paused.
func (a *app) queueNames(ctx context.Context, c *mq.Client, pattern string) ([]string, error) {
	return c.Inspector().QueueNames(ctx, pattern)
}

package main

// Reading messages a page at a time. The library's QueueContent reads a
// whole queue (O(n)), and MessageStatus answers only the status, so this
// file reads the messages hash itself, by the library's key layout
// (internal/keys), and asks for a page's statuses in one call of the
// library's status script (internal/protocol). It is the only file that
// reaches below the public API: when the library exports a paged read of
// messages (the dashboard needs one too), it is replaced by that.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// The stored content, and that of a pending requeue, in one round trip.
	ks := r.keys(queue)
	contents := make([]*redis.StringCmd, len(ids))
	requeues := make([]*redis.StringCmd, len(ids))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if data == nil {
				contents[i] = p.HGet(ctx, ks[keys.Messages], id)
			}
			if strings.HasSuffix(infos[i].Status, "-with-requeue") {
				requeues[i] = p.HGet(ctx, ks[keys.MessagesRQ], id)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("message content in %q: %w", queue, err)
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
		if requeues[i] != nil {
			if b, err := requeues[i].Bytes(); err == nil {
				c := newContent(b)
				v.Requeue = &c
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// page reads up to limit messages of queue from cursor on, in the order
// of the messages hash (HSCAN), and answers the cursor of the next page, ""
// at the end. A cursor is "C" or "C.K": HSCAN's cursor C, of which the
// first K entries were shown already, so that a page holds exactly limit
// messages even when Redis answers more at once (as it does for a small
// hash). As with SCAN, a message written meanwhile may be missed or seen
// twice; one gone meanwhile is left out.
func (r reader) page(ctx context.Context, queue, cursor string, limit int) ([]messageView, string, error) {
	scan, skip, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	data := map[string][]byte{}
	next := ""
	for len(ids) < limit {
		kvs, nextScan, err := r.rdb.HScan(ctx, r.keys(queue)[keys.Messages], scan, "*", int64(limit)).Result()
		if err != nil {
			return nil, "", fmt.Errorf("messages of %q: %w", queue, err)
		}
		n := len(kvs) / 2
		taken := skip
		for i := skip; i < n && len(ids) < limit; i++ {
			id := kvs[2*i]
			taken = i + 1
			if _, dup := data[id]; dup {
				continue
			}
			ids = append(ids, id)
			data[id] = []byte(kvs[2*i+1])
		}
		if taken < n {
			next = fmt.Sprintf("%d.%d", scan, taken)
			break
		}
		if nextScan == 0 {
			next = ""
			break
		}
		scan, skip = nextScan, 0
		next = strconv.FormatUint(scan, 10)
	}
	views, err := r.views(ctx, queue, ids, data)
	if err != nil {
		return nil, "", err
	}
	// A message collected or deleted since the scan read it.
	kept := views[:0]
	for _, v := range views {
		if v.Status != mq.StatusNone.String() {
			kept = append(kept, v)
		}
	}
	return kept, next, nil
}

// parseCursor reads a page cursor ("" or "0" for the first page).
func parseCursor(s string) (scan uint64, skip int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	c, k, hasSkip := strings.Cut(s, ".")
	scan, err = strconv.ParseUint(c, 10, 64)
	if err == nil && hasSkip {
		skip, err = strconv.Atoi(k)
		if err == nil && skip < 0 {
			err = errors.New("negative")
		}
	}
	if err != nil {
		return 0, 0, usageErrorf("--cursor %q: not a cursor of a previous page", s)
	}
	return scan, skip, nil
}

// age is a view's age as a duration.
func (v messageView) age() time.Duration { return time.Duration(v.AgeMS) * time.Millisecond }

// backoff is a view's remaining backoff as a duration.
func (v messageView) backoff() time.Duration { return time.Duration(v.BackoffMS) * time.Millisecond }

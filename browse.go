package mq

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gocarmine/mq/internal/protocol"
)

// Page is one page of a listing that goes on by cursor: the messages of a
// queue ([Inspector.QueueMessages]) or its dead letters
// ([Inspector.DeadLetters]). A listing starts with the cursor "" and goes
// on with the Cursor of the page before, until a page answers "".
type Page[T any] struct {
	// Items are the page's entries.
	Items []T
	// Cursor continues the listing from the next page; it is "" when the
	// listing is complete. It is opaque: pass it back as it is.
	Cursor string
}

// Page sizes of the listings.
const (
	// DefaultPageSize is the page size of a listing asked for 0 or less.
	DefaultPageSize = 100
	// MaxPageSize is the largest page a listing answers.
	MaxPageSize = 1000
	// browseRounds bounds the HSCAN calls of one page: a hash with many
	// empty buckets may answer several calls with nothing.
	browseRounds = 16
)

// QueueMessages returns one page of the queue's messages, with their
// statuses, in a round trip or two however long the queue: a listing to
// browse, where QueueContent reads it all. cursor is "" for the first
// page, then the Cursor of the page before; limit is the page size
// (DefaultPageSize when 0 or less, at most MaxPageSize). The messages come
// in the order Redis keeps the messages hash, not by age.
//
// It walks the messages hash with HSCAN, so it does not block Redis, and
// reads the page's statuses in one script call. As with SCAN, a message
// enqueued or deleted meanwhile may be missed or seen, and every message
// present throughout is seen at least once. A page may hold fewer than
// limit messages while its Cursor is not "" (some pages even none). The
// order is the hash's, not the messages' age. Messages whose content
// cannot be decoded have DecodeErr set, as in QueueContent.
func (in *Inspector) QueueMessages(ctx context.Context, queue, cursor string, limit int) (Page[MessageInfo], error) {
	if err := ValidateQueueName(queue); err != nil {
		return Page[MessageInfo]{}, err
	}
	limit = pageSize(limit)
	scan, skip, err := parseBrowseCursor(cursor)
	if err != nil {
		return Page[MessageInfo]{}, err
	}

	ids := make([]string, 0, limit)
	data := make(map[string]string, limit)
	next := ""
	for round := 0; ; round++ {
		var after uint64
		kvs, err := within(in.c, ctx, func(ctx context.Context) (kvs []string, err error) {
			kvs, after, err = protocol.ScanMessages(ctx, in.c.rdb, in.c.keys(queue), scan, int64(limit))
			return kvs, err
		})
		if err != nil {
			return Page[MessageInfo]{}, fmt.Errorf("mq: queue messages of %q: %w", queue, err)
		}
		n := len(kvs) / 2
		taken := min(n-min(skip, n), limit-len(ids))
		for i := skip; i < skip+taken; i++ {
			id := kvs[2*i]
			if _, dup := data[id]; !dup {
				ids = append(ids, id)
			}
			data[id] = kvs[2*i+1]
		}
		if skip+taken < n {
			// The page is full part way through this call's answer: the
			// next page asks for the same call and skips what was taken.
			next = formatBrowseCursor(scan, skip+taken)
			break
		}
		scan, skip = after, 0
		if scan == 0 {
			break
		}
		if len(ids) >= limit || round+1 >= browseRounds {
			next = formatBrowseCursor(scan, 0)
			break
		}
	}

	out := Page[MessageInfo]{Cursor: next, Items: make([]MessageInfo, 0, len(ids))}
	if len(ids) == 0 {
		return out, nil
	}
	now, reads, err := in.readMessages(ctx, queue, "", ids)
	if err != nil {
		return Page[MessageInfo]{}, err
	}
	for i, id := range ids {
		if m, ok := in.messageInfo(id, []byte(data[id]), reads[i], now); ok {
			out.Items = append(out.Items, m)
		}
	}
	return out, nil
}

// pageSize is the page size of a listing asked for limit.
func pageSize(limit int) int {
	if limit <= 0 {
		return DefaultPageSize
	}
	return min(limit, MaxPageSize)
}

// A browse cursor is HSCAN's cursor, then, when a page ended part way
// through that call's answer, a dot and how many of its entries to skip.
func formatBrowseCursor(scan uint64, skip int) string {
	s := strconv.FormatUint(scan, 10)
	if skip > 0 {
		s += "." + strconv.Itoa(skip)
	}
	return s
}

func parseBrowseCursor(cursor string) (scan uint64, skip int, err error) {
	if cursor == "" {
		return 0, 0, nil
	}
	s, k, dotted := strings.Cut(cursor, ".")
	scan, err = strconv.ParseUint(s, 10, 64)
	if err == nil && dotted {
		skip, err = strconv.Atoi(k)
		if err == nil && skip <= 0 {
			err = fmt.Errorf("skip %d", skip)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%w: cursor %q: %v", ErrInvalidOption, cursor, err)
	}
	return scan, skip, nil
}

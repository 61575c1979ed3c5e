// Package queuetest reads a queue's keys directly, for the tests of the
// protocol and of the package: the state a call left, in a form two
// states can be compared in.
package queuetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// IsReceipts tells whether key i holds receipts: what calls applied, not
// the state of the queue.
func IsReceipts(i keys.Index) bool {
	switch i {
	case keys.EnqueueReceipts, keys.EnqueueReceiptsPrev, keys.PollReceipts, keys.PollReceiptsPrev:
		return true
	}
	return false
}

// Dump reads every key of a queue but the receipts into comparable text,
// by suffix; key names a key of the queue. Times within 10 s of now read
// "NOW", and from 20 s to 130 s after it (locks and backoffs set by the
// calls) "LATER", so that two copies worked on a few milliseconds apart
// compare equal. A key that cannot be read fails tb.
func Dump(tb testing.TB, rdb redis.UniversalClient, key func(keys.Index) string, now int64) map[string]string {
	tb.Helper()
	ctx := context.Background()
	norm := func(v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil:
			return v
		case n > now-10000 && n < now+10000:
			return "NOW"
		case n >= now+20000 && n <= now+130000:
			return "LATER"
		}
		return v
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	out := map[string]string{}
	for i := range keys.Index(keys.Count) {
		if IsReceipts(i) {
			continue
		}
		k := key(i)
		typ, err := rdb.Type(ctx, k).Result()
		must(err)
		var text string
		switch typ {
		case "none":
			continue
		case "hash":
			h, err := rdb.HGetAll(ctx, k).Result()
			must(err)
			if i == keys.History {
				text = historyText(h)
				break
			}
			fields := make([]string, 0, len(h))
			for f, v := range h {
				if i == keys.Dead {
					v = deadText(v, norm)
				}
				fields = append(fields, f+"="+norm(v))
			}
			slices.Sort(fields)
			text = fmt.Sprint(fields)
		case "set":
			m, err := rdb.SMembers(ctx, k).Result()
			must(err)
			slices.Sort(m)
			text = fmt.Sprint(m)
		case "zset":
			z, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			must(err)
			members := make([]string, len(z))
			for i, m := range z {
				members[i] = fmt.Sprint(m.Member) + "=" + norm(strconv.FormatInt(int64(m.Score), 10))
			}
			slices.Sort(members)
			text = fmt.Sprint(members)
		case "list":
			l, err := rdb.LRange(ctx, k, 0, -1).Result()
			must(err)
			text = fmt.Sprint(l)
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			must(err)
			text = v
		default:
			tb.Fatalf("%s has type %s", k, typ)
		}
		out[keys.Suffixes[i]] = text
	}
	return out
}

// HGet reads one field of a hash, "" when absent.
func HGet(tb testing.TB, rdb redis.UniversalClient, key, field string) string {
	tb.Helper()
	v, err := rdb.HGet(context.Background(), key, field).Result()
	if err == redis.Nil {
		return ""
	}
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// HGetInt reads one field of a hash as a number, 0 when absent.
func HGetInt(tb testing.TB, rdb redis.UniversalClient, key, field string) int64 {
	tb.Helper()
	v := HGet(tb, rdb, key, field)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// IsMember tells whether member is in a set.
func IsMember(tb testing.TB, rdb redis.UniversalClient, key, member string) bool {
	tb.Helper()
	ok, err := rdb.SIsMember(context.Background(), key, member).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

// List reads a whole list.
func List(tb testing.TB, rdb redis.UniversalClient, key string) []string {
	tb.Helper()
	l, err := rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// deadText shows a dead letter (pack4's items, docs/protocol.md §11) with
// its times normalised as Dump normalises them.
func deadText(v string, norm func(string) string) string {
	var items []string
	for len(v) >= 4 {
		n := int(binary.LittleEndian.Uint32([]byte(v[:4])))
		if n > len(v)-4 {
			break
		}
		item := v[4 : 4+n]
		if len(items) == 7 { // the attempts' errors (§17), packed in threes
			item = attemptErrorsText(item, norm)
		}
		items, v = append(items, norm(item)), v[4+n:]
	}
	return fmt.Sprintf("%q", items)
}

// attemptErrorsText shows the items of the scripts' pack (three-byte
// lengths) normalised.
func attemptErrorsText(v string, norm func(string) string) string {
	var items []string
	for len(v) >= 3 {
		n := int(v[0]) | int(v[1])<<8 | int(v[2])<<16
		if n > len(v)-3 {
			break
		}
		items, v = append(items, norm(v[3:3+n])), v[3+n:]
	}
	return fmt.Sprintf("%q", items)
}

// historyText shows a history hash (docs/protocol.md §17) as its counts
// by kind, summed over its minutes, so that two copies worked on across
// a minute's turn compare equal.
func historyText(h map[string]string) string {
	sums := map[byte]int64{}
	for f, v := range h {
		if f == "last" || f == "" {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		sums[f[len(f)-1]] += n
	}
	return fmt.Sprintf("p=%d f=%d d=%d", sums['p'], sums['f'], sums['d'])
}

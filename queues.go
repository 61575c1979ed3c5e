package mq

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// QueueCounts holds a queue's counts, read in O(1) (docs/protocol.md
// §10), each message counted once. They are exact when only this library
// writes the queue, but for locks and backoffs that ran out a moment ago
// and that no poll has taken back yet (polls take them back as they fall
// due, so this lasts while no worker runs). A Carmine worker on the queue
// leaves expired entries behind, which count as locked or in backoff
// until collected, as Carmine's queue-status counts them.
type QueueCounts struct {
	// Queued is the number of messages ready for a handler now: Total
	// less Locked, Backoff and Done.
	Queued int64 `json:"queued"`
	// Locked is the number of messages locked by a handling.
	Locked int64 `json:"locked"`
	// Backoff is the number of queued messages in backoff: delayed, or
	// waiting for a retry.
	Backoff int64 `json:"backoff"`
	// Done is the number of messages handled and still kept: in their
	// dedupe window (SucceedWithBackoff), or handled by a Carmine worker
	// and not yet collected.
	Done int64 `json:"done"`
	// Total is the number of messages in the queue.
	Total int64 `json:"total"`
	// Dead is the number of dead letters (Inspector.DeadLetters), which are
	// not in Total.
	Dead int64 `json:"dead"`
	// Paused tells whether the queue is paused (PauseQueue).
	Paused bool `json:"paused"`
}

// QueueCounts returns the queue's counts in one round trip.
func (in *Inspector) QueueCounts(ctx context.Context, queue string) (QueueCounts, error) {
	if err := ValidateQueueName(queue); err != nil {
		return QueueCounts{}, err
	}
	n, err := within(in.c, ctx, func(ctx context.Context) (protocol.Counts, error) {
		return protocol.QueueCounts(ctx, in.c.rdb, in.c.keys(queue))
	})
	if err != nil {
		return QueueCounts{}, fmt.Errorf("mq: queue counts of %q: %w", queue, redisError(err))
	}
	return QueueCounts{Queued: n.Queued, Locked: n.Locked, Backoff: n.Backoff, Done: n.Done, Total: n.Total,
		Dead: n.Dead, Paused: n.Paused}, nil
}

// QueueSize returns the approximate number of messages waiting for a
// handler, in O(1): QueueCounts's Queued.
func (in *Inspector) QueueSize(ctx context.Context, queue string) (int64, error) {
	s, err := in.QueueCounts(ctx, queue)
	return s.Queued, err
}

// contentPage is how many messages QueueContent reads per round trip.
const contentPage = 500

// QueueContent returns every message in the queue, oldest first. It is
// O(n) and meant for debugging; it reads the queue page by page, so it does
// not block Redis, and a message that changes meanwhile may be missed or
// seen in a later state.
func (in *Inspector) QueueContent(ctx context.Context, queue string) ([]MessageInfo, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	var out []MessageInfo
	var cursor uint64
	for {
		page, err := within(in.c, ctx, func(ctx context.Context) (*redis.ScanCmd, error) {
			cmd := in.c.rdb.HScan(ctx, in.c.key(queue, keys.Messages), cursor, "*", contentPage)
			return cmd, cmd.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("mq: queue content of %q: %w", queue, err)
		}
		kvs, next := page.Val()
		ids := make([]string, 0, len(kvs)/2)
		data := make(map[string]string, len(kvs)/2)
		for i := 0; i+1 < len(kvs); i += 2 {
			if _, dup := data[kvs[i]]; !dup {
				ids = append(ids, kvs[i])
			}
			data[kvs[i]] = kvs[i+1]
		}
		if len(ids) > 0 {
			now, reads, err := in.readMessages(ctx, queue, "", ids)
			if err != nil {
				return nil, err
			}
			for i, id := range ids {
				if m, ok := in.messageInfo(id, []byte(data[id]), reads[i], now); ok {
					out = append(out, m)
				}
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b MessageInfo) int {
		return cmp.Or(cmp.Compare(b.Age, a.Age), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// QueueNames returns the names of the queues that hold messages or dead
// letters, or are paused, sorted, whose names match the glob pattern (""
// or "*" for all). It scans with SCAN (on a cluster, every master), never
// KEYS. A queue whose messages were all handled and collected is gone.
//
// It finds only the queues of the client's own key layout (see
// [Config.Cluster]), and only keys that are a queue's: a messages hash,
// under a name the client accepts, beside the queue's udts hash, which
// holds an entry for every message. Keys of other applications that merely
// look like a messages key are left out, and so left alone by
// ClearAllQueues.
func (in *Inspector) QueueNames(ctx context.Context, pattern string) ([]string, error) {
	if pattern == "" {
		pattern = "*"
	}
	found := map[string]bool{}
	_, err := within(in.c, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, in.scanQueues(ctx, pattern, func(q string) { found[q] = true })
	})
	if err != nil {
		return nil, fmt.Errorf("mq: queue names: %w", err)
	}
	names := make([]string, 0, len(found))
	for q := range found {
		names = append(names, q)
	}
	slices.Sort(names)
	return names, nil
}

// scanPage is the COUNT hint of each SCAN call of scanQueues.
const scanPage = 1000

// scanQueues calls fn, one call at a time, with the name of every queue
// QueueNames finds, on every master of a cluster. A name may come more
// than once.
//
// Each page of SCAN (TYPE hash: Redis 6.0 or later, below the 6.2 that the
// worker's BLMOVE needs anyway) is checked in one pipelined round trip:
// HLEN of each candidate's udts hash, which a queue with messages never
// lacks. On a cluster the pipeline goes through the cluster client, which
// sends each key to the node that holds it now.
func (in *Inspector) scanQueues(ctx context.Context, pattern string, fn func(string)) error {
	match := keys.MessagesPattern(pattern, in.c.cfg.Cluster)
	var mu sync.Mutex
	scanNode := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			page, next, err := node.ScanType(ctx, cursor, match, scanPage, "hash").Result()
			if err != nil {
				return err
			}
			names, err := in.realQueues(ctx, page)
			if err != nil {
				return err
			}
			mu.Lock()
			for _, q := range names {
				fn(q)
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				break
			}
		}
		// A queue whose every message became a dead letter, or that is
		// paused and empty, is a queue too.
		for _, k := range []struct {
			i   keys.Index
			typ string
		}{{keys.DeadIndex, "zset"}, {keys.Paused, "string"}} {
			cursor = 0
			for {
				page, next, err := node.ScanType(ctx, cursor, keys.Pattern(pattern, in.c.cfg.Cluster, k.i), scanPage, k.typ).Result()
				if err != nil {
					return err
				}
				mu.Lock()
				for _, key := range page {
					if q, ok := keys.QueueFromKey(key, in.c.cfg.Cluster, k.i); ok && ValidateQueueName(q) == nil {
						fn(q)
					}
				}
				mu.Unlock()
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
		return nil
	}
	if cc, ok := in.c.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scanNode(ctx, node)
		})
	}
	return scanNode(ctx, in.c.rdb)
}

// realQueues answers the names of the queues whose messages hashes are
// among msgKeys: keys of the client's layout, under valid names, whose
// udts is a hash that is not empty.
func (in *Inspector) realQueues(ctx context.Context, msgKeys []string) ([]string, error) {
	var names []string
	for _, k := range msgKeys {
		q, ok := keys.QueueFromMessagesKey(k, in.c.cfg.Cluster)
		if ok && ValidateQueueName(q) == nil {
			names = append(names, q)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	udts := make([]*redis.IntCmd, len(names))
	// Errors stay on each command: a WRONGTYPE only rules out its key.
	_, _ = in.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range names {
			udts[i] = p.HLen(ctx, keys.Key(q, in.c.cfg.Cluster, keys.UDTs))
		}
		return nil
	})
	queues := names[:0]
	for i, q := range names {
		n, err := udts[i].Result()
		switch {
		case isWrongType(err):
			continue // udts is not a hash: not a queue's key
		case err != nil:
			return nil, err
		case n > 0:
			queues = append(queues, q)
		}
	}
	return queues, nil
}

// isWrongType tells whether err is Redis's answer to a command on a key of
// another type.
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// ClearQueues deletes every key of the named queues, for good, and returns
// the names of those that held anything.
func (in *Inspector) ClearQueues(ctx context.Context, queues ...string) ([]string, error) {
	for _, q := range queues {
		if err := ValidateQueueName(q); err != nil {
			return nil, err
		}
	}
	return in.clear(ctx, queues)
}

// ClearAllQueues deletes every key of every queue that QueueNames finds, for
// good, and returns their names.
func (in *Inspector) ClearAllQueues(ctx context.Context) ([]string, error) {
	names, err := in.QueueNames(ctx, "*")
	if err != nil {
		return nil, err
	}
	return in.clear(ctx, names)
}

func (in *Inspector) clear(ctx context.Context, queues []string) ([]string, error) {
	cmds := make([]*redis.IntCmd, len(queues))
	_, err := within(in.c, ctx, func(ctx context.Context) ([]redis.Cmder, error) {
		return in.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, q := range queues {
				// Not the cached key list: names found by scanning need
				// not stay in the cache.
				cmds[i] = p.Del(ctx, keys.All(q, in.c.cfg.Cluster)...)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mq: clear queues: %w", err)
	}
	var cleared []string
	for i, cmd := range cmds {
		if cmd.Val() > 0 {
			cleared = append(cleared, queues[i])
		}
	}
	return cleared, nil
}

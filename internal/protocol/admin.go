package protocol

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// The administrative commands that are no script: scans of the keyspace
// and of a queue's messages, clearing queues, and reading a server's
// eviction settings (docs/protocol.md §10).

// ScanMessages reads one page of a queue's messages hash with HSCAN
// (count is its COUNT hint): ids and contents in turn, and the cursor of
// the next page, 0 after the last. It blocks Redis no longer than a page;
// as with SCAN, an id may come twice.
func ScanMessages(ctx context.Context, r redis.Cmdable, queueKeys []string, cursor uint64, count int64) ([]string, uint64, error) {
	return r.HScan(ctx, queueKeys[keys.Messages], cursor, "*", count).Result()
}

// scanPage is the COUNT hint of each SCAN call of ScanQueues.
const scanPage = 1000

// ScanQueues calls fn, one call at a time, with the name of every queue of
// the layout (cluster) whose name matches the glob pattern and valid
// accepts, found by SCAN (on a cluster client, on every master); a name
// may come more than once. A queue is a messages hash beside a udts hash
// that is not empty (every message has an entry there), or a dead-letter
// index, or a pause mark, or a schedules hash: keys of other applications that merely look
// like a queue's are left out.
//
// Each page of SCAN (TYPE: Redis 6.0 or later) is checked in one
// pipelined round trip of HLEN, one per candidate's udts hash; on a
// cluster the pipeline goes through the cluster client, which sends each
// key to the node that holds it now.
func ScanQueues(ctx context.Context, r redis.UniversalClient, cluster bool, pattern string, valid func(string) bool, fn func(string)) error {
	match := keys.MessagesPattern(pattern, cluster)
	var mu sync.Mutex
	scanNode := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			page, next, err := node.ScanType(ctx, cursor, match, scanPage, "hash").Result()
			if err != nil {
				return err
			}
			names, err := realQueues(ctx, r, cluster, page, valid)
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
		// paused and empty, or that has schedules (§15), is a queue too.
		for _, k := range []struct {
			suffix string
			typ    string
		}{{keys.Suffixes[keys.DeadIndex], "zset"}, {keys.Suffixes[keys.Paused], "string"}, {keys.SchedulesSuffix, "hash"}} {
			cursor = 0
			for {
				page, next, err := node.ScanType(ctx, cursor, keys.SuffixPattern(pattern, cluster, k.suffix), scanPage, k.typ).Result()
				if err != nil {
					return err
				}
				mu.Lock()
				for _, key := range page {
					if q, ok := keys.QueueFromSuffixKey(key, cluster, k.suffix); ok && valid(q) {
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
	if cc, ok := r.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scanNode(ctx, node)
		})
	}
	return scanNode(ctx, r)
}

// realQueues answers the names of the queues whose messages hashes are
// among msgKeys: keys of the layout, under names valid accepts, whose
// udts is a hash that is not empty.
func realQueues(ctx context.Context, r redis.Cmdable, cluster bool, msgKeys []string, valid func(string) bool) ([]string, error) {
	var names []string
	for _, k := range msgKeys {
		if q, ok := keys.QueueFromMessagesKey(k, cluster); ok && valid(q) {
			names = append(names, q)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	udts := make([]*redis.IntCmd, len(names))
	// Errors stay on each command: a WRONGTYPE only rules out its key.
	_, _ = r.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range names {
			udts[i] = p.HLen(ctx, keys.Key(q, cluster, keys.UDTs))
		}
		return nil
	})
	queues := names[:0]
	for i, q := range names {
		n, err := udts[i].Result()
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
			continue // udts is not a hash: not a queue's key
		case err != nil:
			return nil, err
		case n > 0:
			queues = append(queues, q)
		}
	}
	return queues, nil
}

// Clear deletes every key of the queues of the layout (cluster) and takes
// them out of the registry (§16), in one pipelined round trip, and
// answers for each whether it held anything or was registered.
func Clear(ctx context.Context, r redis.Cmdable, cluster bool, queues []string) ([]bool, error) {
	cmds := make([]*redis.IntCmd, len(queues))
	unregs := make([]*redis.IntCmd, len(queues))
	_, err := r.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range queues {
			cmds[i] = p.Del(ctx, append(keys.All(q, cluster), keys.Schedules(q, cluster)...)...)
			// The registry (§16) is another slot's key in a cluster:
			// a command of its own, never a script's.
			unregs[i] = p.SRem(ctx, keys.Registry, keys.QueuePart(q, cluster))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	held := make([]bool, len(queues))
	for i, cmd := range cmds {
		held[i] = cmd.Val() > 0 || unregs[i].Val() > 0
	}
	return held, nil
}

// MaxMemory reads one server's maxmemory (bytes, 0 for none) and
// maxmemory-policy.
func MaxMemory(ctx context.Context, node redis.Cmdable) (int64, string, error) {
	// One pattern rather than two names: CONFIG GET takes several
	// parameters only from Redis 7.0 on.
	cfg, err := node.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil {
		return 0, "", err
	}
	limit, policy := cfg["maxmemory"], cfg["maxmemory-policy"]
	if limit == "" || policy == "" {
		return 0, "", fmt.Errorf("CONFIG GET maxmemory* answered no maxmemory or maxmemory-policy: %v", cfg)
	}
	bytes, err := strconv.ParseInt(limit, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("maxmemory %q: %w", limit, err)
	}
	return bytes, policy, nil
}

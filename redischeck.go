package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// redisCheckTimeout bounds checkRedis, so that a slow or silent Redis
// holds up its caller (a worker's start) for this long at most.
const redisCheckTimeout = 2 * time.Second

// checkRedis reads the Redis settings under which queue keys can vanish
// without any error, on every master of a cluster, and answers one
// human-readable warning per server and risk, sorted; nil when it finds
// none.
//
// The risk it knows is eviction: with maxmemory set (not 0), any
// maxmemory-policy but noeviction lets a full Redis delete keys to make
// room, allkeys-* any key and volatile-* keys that have a TTL.
//
// A server that refuses CONFIG GET (a managed Redis that hides it, an ACL
// user without config|get), that is unreachable, or that does not answer
// within redisCheckTimeout is one it cannot tell about: no warning, and one
// Debug log for the whole call. It returns after redisCheckTimeout at the
// latest, even with a Redis client that ignores context deadlines (go-redis
// does unless ContextTimeoutEnabled is set): a call still waiting then ends
// in the background when the client gives up, and its answer is dropped.
func (c *Client) checkRedis(ctx context.Context) []string {
	return c.checkRedisWithin(ctx, redisCheckTimeout)
}

// checkRedisWithin is checkRedis bounded by timeout, which the tests that
// want an answer lengthen: a loaded machine can take longer than
// redisCheckTimeout to dial a server and read its config.
func (c *Client) checkRedisWithin(ctx context.Context, timeout time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		mu       sync.Mutex
		warnings []string
		errs     []error
	)
	checkNode := func(ctx context.Context, node redis.Cmdable, name string) {
		w, err := evictionWarning(ctx, node, name)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		} else if w != "" {
			warnings = append(warnings, w)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cc, ok := c.rdb.(*redis.ClusterClient)
		if !ok {
			checkNode(ctx, c.rdb, "Redis")
			return
		}
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			checkNode(ctx, node, "Redis master "+node.Options().Addr)
			return nil
		})
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("Redis Cluster: %w", err))
			mu.Unlock()
		}
	}()
	var timedOut error
	select {
	case <-done:
	case <-ctx.Done():
		timedOut = fmt.Errorf("no full answer within %v: %w", timeout, ctx.Err())
	}

	mu.Lock()
	out := slices.Clone(warnings)
	err := errors.Join(append(slices.Clone(errs), timedOut)...)
	mu.Unlock()
	if err != nil {
		c.log.Debug("mq: cannot tell whether Redis may evict queue keys", slog.Any("error", err))
	}
	slices.Sort(out)
	return out
}

// evictionWarning reads one server's maxmemory and maxmemory-policy and
// answers a warning when that server may evict keys, "" when it may not.
// name says which server it is, to start the warning with.
func evictionWarning(ctx context.Context, node redis.Cmdable, name string) (string, error) {
	bytes, policy, err := protocol.MaxMemory(ctx, node)
	if err != nil {
		return "", err
	}
	if bytes == 0 || policy == "noeviction" {
		return "", nil
	}
	when := fmt.Sprintf("once it reaches maxmemory (%s, maxmemory-policy %s)", formatBytes(bytes), policy)
	const fix = "; set maxmemory-policy noeviction, so that a full Redis refuses writes instead"
	switch {
	case strings.HasPrefix(policy, "allkeys-"):
		return name + " may evict any key, queue keys included, " + when + ": messages can vanish without an error" + fix, nil
	case strings.HasPrefix(policy, "volatile-"):
		return name + " may evict keys that have a TTL " + when + ": mq sets none on queue keys, but a queue key given one elsewhere can vanish without an error" + fix, nil
	default:
		return name + " may evict keys, queue keys among them, " + when + ": messages can vanish without an error" + fix, nil
	}
}

// formatBytes writes a size in bytes the way people read it: 100 MiB.
func formatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			v := strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64)
			return strings.TrimSuffix(v, ".0") + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

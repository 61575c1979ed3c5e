package mq

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Connections. An idle worker's polling loop sleeps in a blocking call,
// which holds one of the Redis client's pooled connections the whole time
// (a burst loop never sleeps), unless the client's sleep hub (hub.go)
// lets them all share one. Without it (in cluster mode), workers of many
// queues sharing a client can so hold most of its pool, and a producer on
// the same client then waits for a connection, up to the pool's timeout.
// The client counts the polling loops of its running workers, and a worker
// warns at its start when they could hold more than half the pool.

// poolSize is rdb's connection pool size (per node, for a cluster), 0 when
// unknown.
func poolSize(rdb redis.UniversalClient) int {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().PoolSize
	case *redis.ClusterClient:
		return c.Options().PoolSize
	}
	return 0
}

// addSleepers counts n more polling loops (fewer when n is negative) of
// the client's running workers, and answers a warning when they could
// hold more than half of the pool, "" when not.
func (c *Client) addSleepers(n int) string {
	total := int(c.sleepers.Add(int64(n)))
	size := poolSize(c.rdb)
	if n <= 0 || size == 0 || 2*total <= size || c.hubWorks() {
		return ""
	}
	return fmt.Sprintf("mq: the running workers of this client have %d polling loops, and each may hold one of "+
		"the Redis client's %d pooled connections in a blocking sleep; calls through this client (enqueues too) "+
		"may then wait for a connection. Raise the client's PoolSize above %d, or give the workers or the "+
		"producers a Redis client of their own", total, size, 2*total)
}

package mq

import (
	"context"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/uuid"
	"github.com/redis/go-redis/v9"
)

// newSleepHub returns the sleep hub the client's workers sleep on
// (internal/engine, docs/protocol.md §5), or nil in cluster mode: BLMPOP
// takes its keys in one slot, so each sleeping worker of a cluster client
// blocks on a connection of its own.
func newSleepHub(c *Client) *engine.Hub {
	if c.cfg.Cluster {
		return nil
	}
	if _, ok := c.rdb.(*redis.ClusterClient); ok {
		return nil
	}
	call := func(ctx context.Context, f func(context.Context) error) error {
		_, err := within(c, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
		return err
	}
	return engine.NewHub(c.rdb, call, c.log, keys.Prefix+"hub:"+uuid.New())
}

// hubWorks tells whether the client's sleeping workers share the hub's
// one blocking call (probed, and found to work).
func (c *Client) hubWorks() bool { return c.hub.Works() }

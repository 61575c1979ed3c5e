package mq

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq/internal/protocol"
)

// pollCall records a.Completions, then takes up to a.MaxSteps steps of the
// queue's circle, all in one script call, within ctx (see within).
func (c *Client) pollCall(ctx context.Context, queue string, a protocol.PollArgs) (protocol.PollReply, error) {
	r, err := within(c, ctx, func(ctx context.Context) (protocol.PollReply, error) {
		return protocol.Poll(ctx, c.rdb, c.keys(queue), a)
	})
	if err != nil {
		return r, fmt.Errorf("mq: poll %q: %w", queue, redisError(err))
	}
	return r, nil
}

// renew pushes locks forward in one script call and answers, per renewal,
// the new token, or protocol.NoToken when the lock was lost.
func (c *Client) renew(ctx context.Context, queue string, rs []protocol.Renewal) ([]int64, error) {
	tokens, err := within(c, ctx, func(ctx context.Context) ([]int64, error) {
		return protocol.Renew(ctx, c.rdb, c.keys(queue), rs)
	})
	if err != nil {
		return nil, fmt.Errorf("mq: renew locks in %q: %w", queue, redisError(err))
	}
	return tokens, nil
}

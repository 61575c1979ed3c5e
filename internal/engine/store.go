package engine

import (
	"context"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Store is what the engine's parts need of Redis for one queue: the
// protocol's calls (internal/protocol), already bound to the queue's keys,
// with the client's deadlines kept and Redis's errors mapped to the
// public ones. The root package implements it; the engine never imports
// the root package.
type Store interface {
	// Poll records a.Completions, then takes up to a.MaxSteps steps of the
	// queue's circle, in one script call (dequeue.lua).
	Poll(ctx context.Context, a protocol.PollArgs) (protocol.PollReply, error)
	// Renew pushes locks forward and answers, per renewal, the new token,
	// or protocol.NoToken when the lock was lost.
	Renew(ctx context.Context, rs []protocol.Renewal) ([]int64, error)
	// Beat stores a worker's heartbeat entry, to run out after ttl.
	Beat(ctx context.Context, id string, ttl time.Duration, info []byte) error
	// Gone removes a worker's heartbeat entry.
	Gone(ctx context.Context, id string) error
}

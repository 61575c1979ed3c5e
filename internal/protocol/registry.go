package protocol

import (
	"context"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// The queue registry (docs/protocol.md §16): one set, keys.Registry, of
// the queues that exist, written and read by plain commands, never by a
// script: in a cluster it lives in a slot of its own, not the queue's.

// Register adds queue to the registry of its layout (SADD).
func Register(ctx context.Context, r redis.Cmdable, cluster bool, queue string) error {
	return r.SAdd(ctx, keys.Registry, keys.QueuePart(queue, cluster)).Err()
}

// Registered answers the queues of the layout in the registry
// (SMEMBERS), unsorted.
func Registered(ctx context.Context, r redis.Cmdable, cluster bool) ([]string, error) {
	members, err := r.SMembers(ctx, keys.Registry).Result()
	if err != nil {
		return nil, err
	}
	names := members[:0]
	for _, m := range members {
		if q, ok := keys.QueueFromMember(m, cluster); ok {
			names = append(names, q)
		}
	}
	return names, nil
}

// IsRegistered tells whether queue is in the registry of its layout
// (SISMEMBER).
func IsRegistered(ctx context.Context, r redis.Cmdable, cluster bool, queue string) (bool, error) {
	return r.SIsMember(ctx, keys.Registry, keys.QueuePart(queue, cluster)).Result()
}

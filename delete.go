package mq

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq/internal/protocol"
)

// DeleteMessage deletes message id from queue, whatever its status, and
// answers whether it was in the queue. All of it goes: its content, its
// lock, its backoff or dedupe window, its attempts and a pending requeue.
// A handler still holding it finds its outcome fenced off (counted as
// LockLost), and an enqueue of the id afterwards adds a fresh message.
// Beyond Carmine, whose workers sharing the queue skip the id as they skip
// one collected.
func (in *Inspector) DeleteMessage(ctx context.Context, queue, id string) (bool, error) {
	if err := ValidateQueueName(queue); err != nil {
		return false, err
	}
	if err := validateMessageID(id); err != nil {
		return false, err
	}
	existed, err := within(in.c, ctx, func(ctx context.Context) ([]bool, error) {
		return protocol.Delete(ctx, in.c.rdb, in.c.keys(queue), []string{id})
	})
	if err != nil {
		return false, fmt.Errorf("mq: delete %q from %q: %w", id, queue, redisError(err))
	}
	return existed[0], nil
}

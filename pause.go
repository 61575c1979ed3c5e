package mq

import (
	"context"
	"fmt"

	"github.com/gocarmine/mq/internal/protocol"
)

// PauseQueue pauses queue for every worker of this library, in every
// process: their polls record the outcomes of handlings in flight and hand
// nothing out until ResumeQueue. Enqueues go on; QueueCounts reports the
// pause. It answers whether the queue was running. Beyond Carmine, whose
// workers sharing the queue do not know of the pause and go on working.
// A pause makes the queue exist (QueueNames lists it) whether it held
// anything or not: tools acting on a queue a person typed check
// [Inspector.QueueExists] first.
func (in *Inspector) PauseQueue(ctx context.Context, queue string) (bool, error) {
	return in.setPaused(ctx, queue, true)
}

// ResumeQueue ends a pause of queue (see PauseQueue) and wakes a sleeping
// worker at once; the others poll again within their end-of-queue sleep.
// It answers whether the queue was paused.
func (in *Inspector) ResumeQueue(ctx context.Context, queue string) (bool, error) {
	return in.setPaused(ctx, queue, false)
}

func (in *Inspector) setPaused(ctx context.Context, queue string, pause bool) (bool, error) {
	if err := ValidateQueueName(queue); err != nil {
		return false, err
	}
	changed, err := within(in.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.Pause(ctx, in.c.rdb, in.c.keys(queue), pause)
	})
	if err != nil {
		what := "resume"
		if pause {
			what = "pause"
		}
		return false, fmt.Errorf("mq: %s %q: %w", what, queue, redisError(err))
	}
	if pause {
		// A pause makes the queue exist (docs/protocol.md §16).
		if err := in.c.registerNow(ctx, queue); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

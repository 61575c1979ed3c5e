package mq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// The queue registry (docs/protocol.md §16): one answer to "which queues
// exist". Enqueues, workers and pauses of this library write the queue's
// name to one set beside the queues' keys; QueueNames reads it, merged
// with a scan for queues that only Carmine's producers wrote; ClearQueues
// takes a queue out of it. The set is one key, in a cluster in a slot of
// its own, so no script touches it: every write is a plain command, off
// the hot path (once per client and queue for enqueues, with each
// heartbeat for workers).

// ErrQueueNotFound reports a queue that does not exist: neither in the
// registry nor holding messages, dead letters or a pause (see
// [Inspector.QueueExists]). The library's calls do not return it (an
// enqueue or a pause creates a queue); it is for tools that act on a
// queue a person named, such as mqctl and the dashboard, to refuse a
// typo instead of creating a queue nobody uses.
var ErrQueueNotFound = errors.New("mq: no such queue")

// register puts queue in the registry, once per client: the first
// enqueue of the client to the queue pays one SADD, the next none. After
// ClearQueues of this client, the next enqueue registers it again.
func (c *Client) register(ctx context.Context, queue string) error {
	if _, ok := c.registered.Load(queue); ok {
		return nil
	}
	if err := c.registerNow(ctx, queue); err != nil {
		return err
	}
	c.registered.Store(queue, struct{}{})
	return nil
}

// registerEvery is how often the heartbeats of a client's workers on one
// queue register it: with every beat at the default heartbeatEvery, and
// no more often with the faster beats of tests, so that a beat, whose
// calls share one beat interval as their deadline, costs one more round
// trip at most once in that time.
const registerEvery = heartbeatEvery

// registerBeat registers queue for a heartbeat of a worker of the client:
// at once for the first, then once per registerEvery.
func (c *Client) registerBeat(ctx context.Context, queue string) error {
	if at, ok := c.beatRegistered.Load(queue); ok && time.Since(at.(time.Time)) < registerEvery {
		return nil
	}
	if err := c.registerNow(ctx, queue); err != nil {
		return err
	}
	c.beatRegistered.Store(queue, time.Now())
	return nil
}

// registerNow writes queue to the registry.
func (c *Client) registerNow(ctx context.Context, queue string) error {
	_, err := within(c, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, protocol.Register(ctx, c.rdb, c.cfg.Cluster, queue)
	})
	if err != nil {
		return fmt.Errorf("mq: register queue %q: %w", queue, redisError(err))
	}
	return nil
}

// QueueExists tells whether queue exists: it is in the registry (an
// enqueue, worker or pause of this library named it, and no ClearQueues
// removed it since), or it holds messages or dead letters, or is paused
// (a queue only Carmine's producers wrote). It costs one round trip, two
// for a queue not registered.
func (in *Inspector) QueueExists(ctx context.Context, queue string) (bool, error) {
	if err := ValidateQueueName(queue); err != nil {
		return false, err
	}
	ok, err := within(in.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.IsRegistered(ctx, in.c.rdb, in.c.cfg.Cluster, queue)
	})
	if err != nil {
		return false, fmt.Errorf("mq: queue %q exists: %w", queue, redisError(err))
	}
	if ok {
		return true, nil
	}
	n, err := in.QueueCounts(ctx, queue)
	if err != nil {
		return false, err
	}
	return n.Total > 0 || n.Dead > 0 || n.Paused, nil
}

// AllWorkers returns the running workers of every queue QueueNames finds,
// by queue and then as Workers orders them: one script call per queue.
func (in *Inspector) AllWorkers(ctx context.Context) ([]LiveWorker, error) {
	names, err := in.QueueNames(ctx, "*")
	if err != nil {
		return nil, err
	}
	var out []LiveWorker
	for _, q := range names {
		ws, err := in.Workers(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, ws...)
	}
	return out, nil
}

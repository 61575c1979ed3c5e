package mq

import "context"

// Inspector reads and administers the queues of its client: their names
// and counts, their messages one at a time or a page at a time, their
// dead letters and live workers, and the administrative acts (pause,
// resume, delete, requeue, clear). The producing calls stay on [Client].
//
// An Inspector is the client's own ([Client.Inspector]): it shares the
// client's Redis connection, codec, key layout ([Config.Cluster]) and
// deadline handling, so what it reads is what the client writes. It is
// safe for concurrent use.
type Inspector struct {
	c *Client
}

// Inspector returns the client's inspector. It costs nothing: every call
// answers the same one.
func (c *Client) Inspector() *Inspector { return c.inspector }

// Workers returns the running workers of queue, in every process, as
// their heartbeats in Redis tell them, oldest first: a worker appears
// within moments of its Start, leaves at once when it stops, and a worker
// whose process died leaves once its heartbeat runs out (20 seconds). It
// costs one script call, which also removes a bounded number of entries
// that ran out. Carmine's workers have no heartbeat and never appear.
func (in *Inspector) Workers(ctx context.Context, queue string) ([]LiveWorker, error) {
	return in.c.liveWorkers(ctx, queue)
}

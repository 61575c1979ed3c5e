package mq

import (
	"context"
	"time"
)

// handoffs runs a handler that hands its message off to another queue
// (Then), twice: one follow-up its outcome's script enqueues, one (its id
// the user's) that the relay delivers and removes (LREM); the relay reads
// the queue's records at its start (LRANGE).
func (a *aclTour) handoffs() error {
	ctx, c, q := a.ctx, a.c, "acl:handoffs"
	next := q + "-next"
	if _, err := c.Enqueue(ctx, q, "hand me on", &EnqueueOptions{MessageID: "first"}); err != nil {
		return a.check("Enqueue to the hand-off worker", err, true, nil)
	}
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			return Then(FollowUp{Queue: next, Message: "handed on"},
				FollowUp{Queue: next, Message: "relayed", Options: &EnqueueOptions{MessageID: "relayed"}})
		}),
	})
	if err := a.check("NewWorker for hand-offs", err, true, nil); err != nil {
		return err
	}
	if err := a.check("Start of the hand-off worker", w.Start(ctx), true, nil); err != nil {
		return err
	}
	defer w.Close()
	return a.wait("the follow-up delivered and its record removed", func() (bool, error) {
		n, err := c.Inspector().QueueCounts(ctx, next)
		if err != nil || n.Total < 2 {
			return false, err
		}
		m, err := c.Inspector().QueueCounts(ctx, q)
		return err == nil && m.HandoffsPending == 0, err
	})
}

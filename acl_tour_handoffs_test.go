package mq

import (
	"context"
	"time"
)

// handoffs runs a handler that hands its message off to another queue
// (Then): the relay delivers the record and removes it (LREM), and reads
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
			return Then(FollowUp{Queue: next, Message: "handed on"})
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
		if err != nil || n.Total == 0 {
			return false, err
		}
		m, err := c.Inspector().QueueCounts(ctx, q)
		return err == nil && m.HandoffsPending == 0, err
	})
}

package mq

import (
	"context"
	"errors"
	"time"
)

// cancel cancels a running message from the client (cancel.lua's PUBLISH)
// and sees its handler's context ended through the client's subscription
// (SUBSCRIBE on the queue's channel, which the ACL user must be allowed:
// &carmine:mq:*); the lock time of a minute leaves no renewal to do it.
func (a *aclTour) cancel() error {
	ctx, c, q := a.ctx, a.c, "acl:cancel"
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	w, err := c.StartWorker(ctx, q, &WorkerConfig{LockTime: time.Minute,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			m.Progress(1, "started")
			started <- struct{}{}
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return nil
		})})
	if err := a.check("StartWorker (cancel)", err, true, nil); err != nil {
		return err
	}
	defer w.Close()
	if _, err := c.Enqueue(ctx, q, "x", &EnqueueOptions{MessageID: "x"}); err != nil {
		return a.check("Enqueue (cancel)", err, true, nil)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		return a.check("the handling to start (cancel)", nil, false, nil)
	}
	r, err := c.Cancel(ctx, q, "x")
	if err := a.check("Cancel of a running message", err, r == CancelSignalled, r); err != nil {
		return err
	}
	select {
	case cause := <-ended:
		return a.check("the handler's context ended by the cancel", nil, errors.Is(cause, ErrCancelled), cause)
	case <-time.After(30 * time.Second):
		return a.check("the handler's context ended by the cancel", nil, false, "still running")
	}
}

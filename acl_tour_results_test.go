package mq

import (
	"context"
	"strings"
	"time"
)

// results runs a handler that gives results, waits for one (WaitResult:
// the queue marked, a subscription to its channel, the outcome script's
// PUBLISH), long enough for the subscription's health check (a PING), and
// reads one (Inspector.Result).
func (a *aclTour) results() error {
	ctx, c, q := a.ctx, a.c, "acl:results"
	if _, err := c.Enqueue(ctx, q, "ask", &EnqueueOptions{MessageID: "ask"}); err != nil {
		return a.check("Enqueue to the results worker", err, true, nil)
	}
	release := make(chan struct{})
	w, err := c.NewWorker(q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return m.SetResult("answer")
		}),
	})
	if err := a.check("NewWorker for results", err, true, nil); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := c.WaitResult(waitCtx, q, "ask")
		waited <- err
	}()
	if err := a.check("Start of the results worker", w.Start(ctx), true, nil); err != nil {
		return err
	}
	defer w.Close()
	err = a.wait("a health check of the wait's subscription", a.lastCommand("ping"))
	close(release)
	if err != nil {
		return err
	}
	if err := a.check("WaitResult", <-waited, true, nil); err != nil {
		return err
	}
	r, err := c.Inspector().Result(ctx, q, "ask")
	return a.check("Inspector.Result", err, string(r.Data) != "", r)
}

// lastCommand answers a condition: the last command of a connection of the
// tour's user was cmd.
func (a *aclTour) lastCommand(cmd string) func() (bool, error) {
	return func() (bool, error) {
		list, err := a.admin.ClientList(a.ctx).Result()
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(" "+line+" ", " user="+a.user+" ") && strings.Contains(" "+line+" ", " cmd="+cmd+" ") {
				return true, nil
			}
		}
		return false, nil
	}
}

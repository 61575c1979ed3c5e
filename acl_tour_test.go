package mq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// aclTour runs every feature of the package through its public API: all
// enqueue options and answers, every status and administration call, a
// worker with each outcome, a requeue, the end-of-queue sleep and its
// wake-up, prefetched messages given back at a stop, lock renewal, and the
// script cache lost meanwhile. Each step that waits gives up as soon as
// Redis has refused the user anything.
type aclTour struct {
	ctx   context.Context
	c     *Client
	admin *redis.Client // the default user: SCRIPT FLUSH, ACL LOG, CLIENT LIST
	user  string
}

// refused answers the ACL LOG entries of the tour's user.
func (a *aclTour) refused() ([]string, error) {
	entries, err := a.admin.ACLLog(context.Background(), 1000).Result()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Username != a.user {
			continue
		}
		what := e.Object
		if e.Reason != "command" {
			what = e.Reason + " " + e.Object
		}
		out = append(out, fmt.Sprintf("%s (%s, %d times)", what, e.Context, e.Count))
	}
	slices.Sort(out)
	return out, nil
}

// check answers nil when err is nil and ok holds, or else what went wrong
// in step, with what Redis refused the user so far.
func (a *aclTour) check(step string, err error, ok bool, got any) error {
	if err == nil && ok {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("unexpected answer %+v", got)
	}
	if refused, _ := a.refused(); len(refused) > 0 {
		err = fmt.Errorf("%w; Redis refused %s", err, strings.Join(refused, ", "))
	}
	return fmt.Errorf("%s: %w", step, err)
}

// wait polls cond until it holds. It gives up when Redis has refused the
// user anything, when cond fails, or after 30 s.
func (a *aclTour) wait(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if err != nil || ok {
			return a.check("waiting for "+what, err, ok, nil)
		}
		if refused, err := a.refused(); err != nil || len(refused) > 0 {
			return a.check("waiting for "+what, cmp.Or(err, errGaveUp), false, nil)
		}
		if time.Now().After(deadline) {
			return a.check("waiting for "+what, errors.New("timed out"), false, nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errGaveUp = errors.New("gave up")

func (a *aclTour) flushScripts() error {
	return a.check("SCRIPT FLUSH (admin)", a.admin.ScriptFlush(a.ctx).Err(), true, nil)
}

func (a *aclTour) run() error {
	for _, part := range []func() error{a.enqueueAndInspect, a.backlog, a.worker, a.renewal, a.administration, a.results, a.cancel, a.handoffs} {
		if err := part(); err != nil {
			return err
		}
	}
	return nil
}

func (a *aclTour) enqueueAndInspect() error {
	ctx, c, q := a.ctx, a.c, "acl:enqueue"
	// Receipts kept for a millisecond: each enqueue below starts a new
	// generation of them.
	c.receiptTTL = time.Millisecond
	r, err := c.Enqueue(ctx, q, "first", &EnqueueOptions{MessageID: "m", InitialBackoff: time.Hour, LockTime: time.Minute})
	if err := a.check("Enqueue with InitialBackoff and LockTime", err, r.Action == ActionAdded, r); err != nil {
		return err
	}
	t0, err := a.admin.Time(ctx).Result()
	if err := a.check("TIME (admin)", err, true, nil); err != nil {
		return err
	}
	if err := a.wait("the server's clock to move", func() (bool, error) {
		t, err := a.admin.Time(ctx).Result()
		return t.Sub(t0) > 2*time.Millisecond, err
	}); err != nil {
		return err
	}
	r, err = c.Enqueue(ctx, q, "second", &EnqueueOptions{MessageID: "m", CanUpdate: true, ResetInitialBackoff: true})
	if err := a.check("Enqueue with CanUpdate and ResetInitialBackoff", err, r.Action == ActionUpdated, r); err != nil {
		return err
	}
	r, err = c.Enqueue(ctx, q, "third", &EnqueueOptions{MessageID: "m"})
	if err := a.check("Enqueue of a queued id", err, errors.Is(r.Refused, ErrAlreadyQueued), r); err != nil {
		return err
	}
	many, err := c.EnqueueMany(ctx, q, EnqueueRequest{Message: 1}, EnqueueRequest{Message: 2, Options: &EnqueueOptions{MessageID: "n"}})
	if err := a.check("EnqueueMany", err, len(many) == 2 && many[0].OK() && many[1].OK(), many); err != nil {
		return err
	}
	st, err := c.Inspector().MessageStatus(ctx, q, "m")
	if err := a.check("MessageStatus", err, st == StatusQueued, st); err != nil {
		return err
	}
	qs, err := c.Inspector().QueueCounts(ctx, q)
	if err := a.check("QueueCounts", err, qs == QueueCounts{Queued: 3, Total: 3}, qs); err != nil {
		return err
	}
	size, err := c.Inspector().QueueSize(ctx, q)
	if err := a.check("QueueSize", err, size == 3, size); err != nil {
		return err
	}
	content, err := c.Inspector().QueueContent(ctx, q)
	if err := a.check("QueueContent", err, len(content) == 3, content); err != nil {
		return err
	}
	names, err := c.Inspector().QueueNames(ctx, "acl:*")
	if err := a.check("QueueNames", err, slices.Equal(names, []string{q}), names); err != nil {
		return err
	}

	// The script cache lost: calls fall back to EVAL, one at a time and
	// pipelined.
	if err := a.flushScripts(); err != nil {
		return err
	}
	st, err = c.Inspector().MessageStatus(ctx, q, "n")
	if err := a.check("MessageStatus after SCRIPT FLUSH", err, st == StatusQueued, st); err != nil {
		return err
	}
	if err := a.flushScripts(); err != nil {
		return err
	}
	many, err = c.EnqueueMany(ctx, q, EnqueueRequest{Message: 3}, EnqueueRequest{Message: 4, Options: &EnqueueOptions{MessageID: "n"}})
	if err := a.check("EnqueueMany after SCRIPT FLUSH", err,
		len(many) == 2 && many[0].OK() && errors.Is(many[1].Refused, ErrAlreadyQueued), many); err != nil {
		return err
	}
	return nil
}

// backlog enqueues past the wake backlog (docs/protocol.md §3, §5): the
// client's calls go short, one takes its push back for a held id, and
// one takes it back once the backlog is gone and goes again full.
func (a *aclTour) backlog() error {
	ctx, c, q := a.ctx, a.c, "acl:backlog"
	reqs := make([]EnqueueRequest, protocol.WakeBacklog)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i}
	}
	many, err := c.EnqueueMany(ctx, q, reqs...)
	if err := a.check("EnqueueMany of the wake backlog", err, len(many) == len(reqs), len(many)); err != nil {
		return err
	}
	// Each script's first call meets NOSCRIPT, and its EVAL steps aside
	// to enqueue.lua: two calls of each.
	for _, id := range []string{"full-1", "full-2", "short-1", "short-2"} {
		r, err := c.Enqueue(ctx, q, id, &EnqueueOptions{MessageID: id})
		if err := a.check("Enqueue past the backlog: "+id, err, r.Action == ActionAdded, r); err != nil {
			return err
		}
	}
	r, err := c.Enqueue(ctx, q, "again", &EnqueueOptions{MessageID: "short-2"})
	if err := a.check("Enqueue of a held id, short", err, errors.Is(r.Refused, ErrAlreadyQueued), r); err != nil {
		return err
	}
	if err := a.check("DEL mids-ready (admin)", a.admin.Del(ctx, c.key(q, keys.MidsReady)).Err(), true, nil); err != nil {
		return err
	}
	r, err = c.Enqueue(ctx, q, "after", &EnqueueOptions{MessageID: "after"})
	if err := a.check("Enqueue once the backlog is gone", err, r.Action == ActionAdded, r); err != nil {
		return err
	}
	ready, err := a.admin.LRange(ctx, c.key(q, keys.MidsReady), 0, -1).Result()
	return a.check("LRANGE mids-ready (admin)", err, slices.Equal(ready, []string{"after"}), ready)
}

func (a *aclTour) administration() error {
	ctx, c := a.ctx, a.c
	names, err := c.Inspector().QueueNames(ctx, "")
	// (acl:renew holds nothing, its one message handled and collected,
	// and is listed: the registry keeps it, docs/protocol.md §16.)
	want := []string{"acl:backlog", "acl:enqueue", "acl:renew", "acl:worker"}
	if err := a.check("QueueNames", err, slices.Equal(names, want), names); err != nil {
		return err
	}
	// A dedupe window a Carmine worker wrote (done and in backoff, not in
	// windows): the counts read done to count it once.
	k := c.keys("acl:enqueue")
	_, err = a.admin.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k[keys.Messages], "w", "x")
		p.SAdd(ctx, k[keys.Done], "w")
		p.HSet(ctx, k[keys.Backoffs], "w", time.Now().Add(time.Hour).UnixMilli())
		return nil
	})
	if err := a.check("a Carmine worker's dedupe window (admin)", err, true, nil); err != nil {
		return err
	}
	qs, err := c.Inspector().QueueCounts(ctx, "acl:enqueue")
	if err := a.check("QueueCounts with a Carmine worker's window", err, qs.Done == 1 && qs.Backoff == 0, qs); err != nil {
		return err
	}
	paused, err := c.Inspector().PauseQueue(ctx, "acl:enqueue")
	if err := a.check("PauseQueue", err, paused, paused); err != nil {
		return err
	}
	resumed, err := c.Inspector().ResumeQueue(ctx, "acl:enqueue")
	if err := a.check("ResumeQueue", err, resumed, resumed); err != nil {
		return err
	}
	err = c.Inspector().SetLimits(ctx, "acl:enqueue", Limits{KeyRate: Rate{N: 1, Per: time.Minute}, KeyConcurrency: 1})
	if err := a.check("SetLimits", err, true, nil); err != nil {
		return err
	}
	lim, err := c.Inspector().Limits(ctx, "acl:enqueue")
	if err := a.check("Limits", err, lim.Limits.KeyConcurrency == 1, lim); err != nil {
		return err
	}
	r, err := c.Enqueue(ctx, "acl:enqueue", "x", &EnqueueOptions{MessageID: "keyed", LimitKey: "k"})
	if err := a.check("Enqueue with LimitKey", err, r.Action == ActionAdded, r); err != nil {
		return err
	}
	if err := a.check("ClearLimits", c.Inspector().ClearLimits(ctx, "acl:enqueue"), true, nil); err != nil {
		return err
	}
	deleted, err := c.Inspector().DeleteMessage(ctx, "acl:enqueue", "m")
	if err := a.check("DeleteMessage", err, deleted, deleted); err != nil {
		return err
	}
	cleared, err := c.Inspector().ClearQueues(ctx, "acl:enqueue", "acl:none")
	if err := a.check("ClearQueues", err, slices.Equal(cleared, []string{"acl:enqueue"}), cleared); err != nil {
		return err
	}
	cleared, err = c.Inspector().ClearAllQueues(ctx)
	return a.check("ClearAllQueues", err, slices.Equal(cleared, slices.DeleteFunc(want, func(q string) bool { return q == "acl:enqueue" })), cleared)
}

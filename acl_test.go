package mq

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// aclCommands is every Redis command that this package, through go-redis,
// sends to one redis-server: what an ACL user of the library must be
// allowed, with the key pattern ~carmine:mq:*. It is the one copy of the
// list. The README's "Redis ACL" section shows it between the
// <!-- acl-commands --> markers, and TestACLCommandsInREADME keeps the two
// equal (go test -run TestACLCommandsInREADME -update-readme . rewrites the
// README's copy).
//
// TestACLCommands runs a tour of every feature as a user allowed exactly
// these commands, and once for each command as a user allowed all but that
// one, which must then be refused. When the scripts start to send a new
// command, the tour fails and names it: add it here. Commands without a
// note are called by the Lua scripts (lua/*.lua) only.
var aclCommands = []string{
	"blmove",     // the worker's end-of-queue sleep
	"config|get", // the worker's warning about eviction (optional: without it, no warning)
	"del",        // ClearQueues, ClearAllQueues; a poll's surplus sleep sentinels
	"eval",       // each script, when the server's script cache lacks it
	"evalsha",
	"exists",
	"get",
	"hdel",
	"hexists",
	"hget",
	"hincrby",
	"hlen",  // also QueueNames
	"hmget", // receipts
	"hscan", // QueueContent
	"hset",
	"hsetnx",
	"llen", // also the worker's sleep
	"lpush",
	"ltrim",  // a poll's surplus sleep sentinels
	"rename", // receipts' generations
	"rpop",
	"rpoplpush",
	"rpush", // a prefetched message given back
	"sadd",
	"scan",  // QueueNames, ClearAllQueues
	"scard",
	"set",
	"setrange", // an enqueue's check that Redis is not full
	"sismember",
	"srem",
	"time",   // every script reads the server's clock
	"unlink", // receipts' generations
}

// aclKeys is the key pattern of the library's ACL user.
const aclKeys = "~carmine:mq:*"

// aclSetUser is the ACL SETUSER command that creates (or resets) the user
// name with password, allowed cmds on the library's keys and nothing else.
func aclSetUser(name, password string, cmds []string) []string {
	args := []string{"ACL", "SETUSER", name, "reset", "on", ">" + password, aclKeys, "-@all"}
	for _, c := range cmds {
		args = append(args, "+"+c)
	}
	return args
}

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's Redis ACL command list from aclCommands")

// TestACLCommandsInREADME: the README shows aclCommands, in an ACL SETUSER
// line that can be pasted into redis-cli.
func TestACLCommandsInREADME(t *testing.T) {
	t.Parallel()
	const begin, end = "<!-- acl-commands -->\n", "<!-- /acl-commands -->"
	want := "```\n" + strings.Join(aclSetUser("mq", "choose-a-password", aclCommands), " ") + "\n```\n"
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	i := strings.Index(readme, begin)
	j := strings.Index(readme, end)
	require.True(t, i >= 0 && j > i, "README.md has no %q ... %q section", strings.TrimSpace(begin), end)
	got := readme[i+len(begin) : j]
	if got == want {
		return
	}
	if *updateREADME {
		readme = readme[:i+len(begin)] + want + readme[j:]
		require.NoError(t, os.WriteFile("README.md", []byte(readme), 0o644))
		return
	}
	t.Errorf("README.md's ACL command list differs from aclCommands in acl_test.go; "+
		"run go test -run TestACLCommandsInREADME -update-readme . to rewrite it\n"+
		"README has:\n%s\nwant:\n%s", got, want)
}

// TestACLCommands: every feature works as an ACL user allowed aclCommands
// only, and each of them is needed: without it, Redis refuses it somewhere
// in the tour. Each run has its own redis-server, so the runs go in
// parallel; -short runs only the first.
func TestACLCommands(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		refused, err := aclRun(t, aclCommands)
		if len(refused) > 0 {
			t.Errorf("Redis refused the library these commands: %s\n"+
				"add each one the library really sends to aclCommands in acl_test.go (and run "+
				"go test -run TestACLCommandsInREADME -update-readme .)", strings.Join(refused, ", "))
		}
		require.NoError(t, err)
	})
	if testing.Short() {
		return
	}
	for _, cmd := range aclCommands {
		t.Run("without "+cmd, func(t *testing.T) {
			t.Parallel()
			others := slices.DeleteFunc(slices.Clone(aclCommands), func(c string) bool { return c == cmd })
			refused, err := aclRun(t, others)
			t.Logf("the tour without %s: %v", cmd, err)
			if !slices.ContainsFunc(refused, func(r string) bool { return strings.HasPrefix(r, cmd+" ") }) {
				t.Errorf("the tour never needed %s (refused: %v); remove it from aclCommands, or make the tour use it", cmd, refused)
			}
		})
	}
}

// aclRun starts a redis-server, creates an ACL user allowed cmds, runs the
// tour as that user and answers what Redis refused the user (from ACL LOG,
// each as "command (context, n times)" or "key k (...)") and the tour's
// first failure.
func aclRun(t *testing.T, cmds []string) (refused []string, err error) {
	r := redistest.Start(t, "--acllog-max-len", "1000")
	admin := r.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const user = "mq"
	setUser := aclSetUser(user, "secret", cmds)
	args := make([]any, len(setUser))
	for i, a := range setUser {
		args[i] = a
	}
	require.NoError(t, admin.Do(ctx, args...).Err())
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, Username: user, Password: "secret"})
	t.Cleanup(func() { _ = rdb.Close() })
	log := &logRecorder{}
	c, err := New(rdb, &Config{Logger: log.logger(t)})
	require.NoError(t, err)
	tour := &aclTour{ctx: ctx, c: c, admin: admin, user: user}
	err = tour.run()
	refused, lerr := tour.refused()
	require.NoError(t, lerr)
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("Redis refused %s", strings.Join(refused, ", "))
	}
	if err != nil {
		for _, e := range log.errors() {
			t.Logf("logged error: %s", e)
		}
	}
	return refused, err
}

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
	for _, part := range []func() error{a.enqueueAndInspect, a.worker, a.renewal, a.administration} {
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
	st, err := c.MessageStatus(ctx, q, "m")
	if err := a.check("MessageStatus", err, st == StatusQueued, st); err != nil {
		return err
	}
	qs, err := c.QueueCounts(ctx, q)
	if err := a.check("QueueCounts", err, qs == QueueCounts{Queued: 3, Total: 3}, qs); err != nil {
		return err
	}
	size, err := c.QueueSize(ctx, q)
	if err := a.check("QueueSize", err, size == 3, size); err != nil {
		return err
	}
	content, err := c.QueueContent(ctx, q)
	if err := a.check("QueueContent", err, len(content) == 3, content); err != nil {
		return err
	}
	names, err := c.QueueNames(ctx, "acl:*")
	if err := a.check("QueueNames", err, slices.Equal(names, []string{q}), names); err != nil {
		return err
	}

	// The script cache lost: calls fall back to EVAL, one at a time and
	// pipelined.
	if err := a.flushScripts(); err != nil {
		return err
	}
	st, err = c.MessageStatus(ctx, q, "n")
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

// worker runs a worker through every outcome, a requeue, a sleep and its
// wake-up, and a stop that gives back prefetched messages.
func (a *aclTour) worker() error {
	ctx, c, q := a.ctx, a.c, "acl:worker"
	// Sleep sentinels pushed by another writer, in both lists: the first
	// end-of-queue sleep leaves one.
	for k, n := range map[keys.Index]int{keys.ISleepA: 4, keys.ISleepB: 2} {
		for range n {
			if err := a.check("LPUSH sentinels (admin)", a.admin.LPush(ctx, keys.Key(q, false, k), "_").Err(), true, nil); err != nil {
				return err
			}
		}
	}
	var mu sync.Mutex
	finished := map[string]int{}
	done := func(ids ...string) func() (bool, error) {
		return func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if finished[id] == 0 {
					return false, nil
				}
			}
			return true, nil
		}
	}
	holding := make(chan string, 1) // the id a handler holds, waiting for the tour
	requeued := make(chan struct{}) // closed once the held message has a requeue
	released := make(chan struct{}) // closed once the stop gave messages back
	openRequeued := sync.OnceFunc(func() { close(requeued) })
	openReleased := sync.OnceFunc(func() { close(released) })
	defer openRequeued() // so that no handler is left waiting when the tour fails
	defer openReleased()
	hold := func(ctx context.Context, id string, until <-chan struct{}) {
		select {
		case holding <- id:
		default:
		}
		select {
		case <-until:
		case <-ctx.Done():
		}
	}
	handler := HandlerFunc(func(ctx context.Context, m *Message) error {
		mu.Lock()
		before := finished[m.ID]
		mu.Unlock()
		defer func() {
			mu.Lock()
			finished[m.ID]++
			mu.Unlock()
		}()
		switch {
		case m.ID == "retry" && m.Attempt == 1:
			return Retry(time.Millisecond)
		case m.ID == "backoff":
			return SucceedWithBackoff(time.Hour)
		case m.ID == "fail":
			return errors.New("the tour's handler fails, as asked")
		case m.ID == "requeue" && before == 0:
			hold(ctx, m.ID, requeued)
		case strings.HasPrefix(m.ID, "held-"):
			hold(ctx, m.ID, released)
		}
		return nil
	})
	w, err := c.StartWorker(ctx, q, &WorkerConfig{
		Handler:           handler,
		LockTime:          time.Minute, // long enough to prefetch
		EndOfQueueBackoff: Constant(100 * time.Millisecond),
	})
	if err := a.check("StartWorker", err, true, nil); err != nil {
		return err
	}
	defer w.Close()

	reqs := func(ids ...string) []EnqueueRequest {
		rs := make([]EnqueueRequest, len(ids))
		for i, id := range ids {
			rs[i] = EnqueueRequest{Message: id, Options: &EnqueueOptions{MessageID: id}}
		}
		return rs
	}
	numbered := func(prefix string, n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%02d", prefix, i)
		}
		return ids
	}
	status := func(id string, want Status) func() (bool, error) {
		return func() (bool, error) {
			st, err := c.MessageStatus(ctx, q, id)
			return st == want, err
		}
	}

	// Every outcome.
	ids := append(numbered("warm", 4), "retry", "backoff", "fail")
	if _, err := c.EnqueueMany(ctx, q, reqs(ids...)...); err != nil {
		return a.check("EnqueueMany to the worker", err, true, nil)
	}
	if err := a.wait("success, retry, backoff and error outcomes", func() (bool, error) {
		ok, _ := done(ids...)()
		mu.Lock()
		defer mu.Unlock()
		return ok && finished["retry"] == 2, nil
	}); err != nil {
		return err
	}
	if err := a.wait("the backoff outcome to be recorded", status("backoff", StatusDoneWithBackoff)); err != nil {
		return err
	}
	r, err := c.Enqueue(ctx, q, "again", &EnqueueOptions{MessageID: "backoff"})
	if err := a.check("Enqueue of an id in backoff", err, errors.Is(r.Refused, ErrBackoff), r); err != nil {
		return err
	}

	// A requeue of a message being handled.
	if _, err := c.Enqueue(ctx, q, "requeue", &EnqueueOptions{MessageID: "requeue"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	select {
	case <-holding:
	case <-ctx.Done():
		return a.check("waiting for the requeue's first handling", ctx.Err(), false, nil)
	}
	r, err = c.Enqueue(ctx, q, "requeue again", &EnqueueOptions{MessageID: "requeue", CanRequeue: true})
	if err := a.check("Enqueue with CanRequeue of a locked id", err, r.Action == ActionAdded, r); err != nil {
		return err
	}
	if err := a.wait("the requeue to be pending", status("requeue", StatusLockedWithRequeue)); err != nil {
		return err
	}
	openRequeued()
	if err := a.wait("the requeued message handled again", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return finished["requeue"] == 2, nil
	}); err != nil {
		return err
	}

	// The end-of-queue sleep, and an enqueue that ends it, after the
	// script cache was lost.
	if err := a.wait("the worker to sleep in BLMOVE", a.blockedInBLMove); err != nil {
		return err
	}
	if err := a.flushScripts(); err != nil {
		return err
	}
	if _, err := c.Enqueue(ctx, q, "wake", &EnqueueOptions{MessageID: "wake"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	if err := a.wait("the wake-up message handled", done("wake")); err != nil {
		return err
	}

	// Prefetched messages given back at a stop: quick handlings first, so
	// that the worker prefetches; then one handler holds a message while
	// others wait, taken, for a handler.
	warm := numbered("quick", 16)
	if _, err := c.EnqueueMany(ctx, q, reqs(warm...)...); err != nil {
		return a.check("EnqueueMany", err, true, nil)
	}
	if err := a.wait("quick handlings", done(warm...)); err != nil {
		return err
	}
	held := numbered("held", 8)
	if _, err := c.EnqueueMany(ctx, q, reqs(held...)...); err != nil {
		return a.check("EnqueueMany", err, true, nil)
	}
	var first string
	select {
	case first = <-holding:
	case <-ctx.Done():
		return a.check("waiting for a held handling", ctx.Err(), false, nil)
	}
	lockedWaiting := func() (bool, error) {
		content, err := c.QueueContent(ctx, q)
		for _, m := range content {
			if strings.HasPrefix(m.ID, "held-") && m.ID != first && m.Status == StatusLocked {
				return true, err
			}
		}
		return false, err
	}
	if err := a.wait("a prefetched message waiting for the held handler", lockedWaiting); err != nil {
		return err
	}
	stopped, abortStop := a.startStop(w)
	defer abortStop()
	if err := a.wait("the stop to give back prefetched messages", func() (bool, error) {
		return w.Stats().Counts.Released > 0, nil
	}); err != nil {
		return err
	}
	openReleased()
	if err := a.wait("the stop", stopped); err != nil {
		return err
	}
	content, err := c.QueueContent(ctx, q)
	givenBack := 0
	for _, m := range content {
		if strings.HasPrefix(m.ID, "held-") && m.Status == StatusQueued && m.Attempts == 0 {
			givenBack++
		}
	}
	return a.check("QueueContent after the stop", err, givenBack > 0, content)
}

// blockedInBLMove tells whether a connection of the tour's user is blocked
// in BLMOVE, as a sleeping worker is.
func (a *aclTour) blockedInBLMove() (bool, error) {
	list, err := a.admin.ClientList(a.ctx).Result()
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		if fields["user"] == a.user && fields["cmd"] == "blmove" && strings.Contains(fields["flags"], "b") {
			return true, nil
		}
	}
	return false, nil
}

// renewal runs a worker with RenewLocks and a short lock time, and a
// handler that extends its lock itself too.
func (a *aclTour) renewal() error {
	ctx, c, q := a.ctx, a.c, "acl:renew"
	extended := make(chan error, 1)
	renewed := make(chan struct{}) // closed once the worker renewed the lock
	openRenewed := sync.OnceFunc(func() { close(renewed) })
	defer openRenewed()
	w, err := c.StartWorker(ctx, q, &WorkerConfig{
		LockTime:   time.Second,
		RenewLocks: true,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			select {
			case extended <- m.ExtendLock(ctx):
			default:
			}
			select {
			case <-renewed:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}),
	})
	if err := a.check("StartWorker", err, true, nil); err != nil {
		return err
	}
	defer w.Close()
	if _, err := c.Enqueue(ctx, q, "long", &EnqueueOptions{MessageID: "long"}); err != nil {
		return a.check("Enqueue", err, true, nil)
	}
	var extendErr error
	select {
	case extendErr = <-extended:
	case <-ctx.Done():
		extendErr = ctx.Err()
	}
	if err := a.check("Message.ExtendLock", extendErr, true, nil); err != nil {
		return err
	}
	if err := a.wait("the worker to renew the lock", func() (bool, error) {
		return w.Stats().Counts.LocksRenewed > 0, nil
	}); err != nil {
		return err
	}
	openRenewed()
	if err := a.wait("the success recorded", func() (bool, error) {
		st, err := c.MessageStatus(ctx, q, "long") // done, or done and collected
		return st == StatusDoneAwaitingGC || st == StatusNone, err
	}); err != nil {
		return err
	}
	stopped, abortStop := a.startStop(w)
	defer abortStop()
	return a.wait("the stop", stopped)
}

// startStop starts w.Stop and answers a condition for wait that holds once
// it returned (failing with its error), and a func that cancels the stop
// and waits for it, so that a stop never outlives a failed tour.
func (a *aclTour) startStop(w *Worker) (stopped func() (bool, error), abort func()) {
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = w.Stop(ctx)
	}()
	stopped = func() (bool, error) {
		select {
		case <-done:
			return true, err
		default:
			return false, nil
		}
	}
	abort = func() {
		cancel()
		<-done
	}
	return stopped, abort
}

func (a *aclTour) administration() error {
	ctx, c := a.ctx, a.c
	names, err := c.QueueNames(ctx, "")
	want := []string{"acl:enqueue", "acl:renew", "acl:worker"}
	if err := a.check("QueueNames", err, slices.Equal(names, want), names); err != nil {
		return err
	}
	cleared, err := c.ClearQueues(ctx, "acl:enqueue", "acl:none")
	if err := a.check("ClearQueues", err, slices.Equal(cleared, []string{"acl:enqueue"}), cleared); err != nil {
		return err
	}
	cleared, err = c.ClearAllQueues(ctx)
	return a.check("ClearAllQueues", err, slices.Equal(cleared, want[1:]), cleared)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// deadView is one dead letter as mqctl shows it; its JSON field names are
// stable, for scripts.
type deadView struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	// Reason is "dead" (the last attempt, or an error marked final) or
	// "quarantined" (handed out too often without an outcome): the
	// library's mq.Outcome.
	Reason string `json:"reason"`
	// Error is the last error's text.
	Error    string `json:"error"`
	Attempts int64  `json:"attempts"`
	// FirstEnqueued is null when unknown; both times are the Redis
	// server's.
	FirstEnqueued *time.Time `json:"first_enqueued"`
	Died          time.Time  `json:"died"`
	// LockTimeMS is the message's own lock time, 0 for the worker's.
	LockTimeMS int64 `json:"lock_time_ms"`
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first, the last included (empty for dead letters of mq v0.1.0).
	AttemptErrors []attemptErrorView `json:"attempt_errors"`
	// Policy is the message's own policy, if it had one.
	Policy *policyView `json:"policy,omitempty"`
	contentView
}

// attemptErrorView is one failed attempt of a dead letter's message.
type attemptErrorView struct {
	Attempt int64     `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

func newDeadView(queue string, d mq.DeadLetter) deadView {
	v := deadView{Queue: queue, ID: d.ID, Reason: string(d.Reason), Error: d.Error, Attempts: d.Attempts,
		Died: d.Died.UTC(), LockTimeMS: d.LockTime.Milliseconds(), Policy: newPolicyView(d.Policy), contentView: newContent(d.Data)}
	if !d.FirstEnqueued.IsZero() {
		t := d.FirstEnqueued.UTC()
		v.FirstEnqueued = &t
	}
	v.AttemptErrors = make([]attemptErrorView, len(d.AttemptErrors))
	for i, e := range d.AttemptErrors {
		v.AttemptErrors[i] = attemptErrorView{Attempt: e.Attempt, At: e.At.UTC(), Error: e.Error}
	}
	return v
}

// deadListView is one page of a queue's dead letters.
type deadListView struct {
	Queue string `json:"queue"`
	// Total is how many dead letters the queue has.
	Total int64 `json:"total"`
	// Cursor is the --cursor the page was asked for, "" for the first.
	Cursor      string     `json:"cursor"`
	DeadLetters []deadView `json:"dead_letters"`
	// NextCursor is the --cursor of the next page; "" after the last.
	NextCursor string `json:"next_cursor"`
}

// deadResult is what became of one dead letter named on the command line.
type deadResult struct {
	ID string `json:"id"`
	// Result is "requeued", "deleted", "kept" (the queue holds a message
	// of the id: not requeued) or "missing" (no such dead letter).
	Result string `json:"result"`
}

// deadChangeView is the answer to a requeue or a delete of dead letters.
type deadChangeView struct {
	Queue string `json:"queue"`
	// Requeued (for a requeue) or Deleted (for a delete) counts the dead
	// letters requeued or deleted; the other is 0.
	Requeued int `json:"requeued"`
	Deleted  int `json:"deleted"`
	// Kept counts those not requeued because the queue holds a message of
	// their id; Missing those named that are not dead letters.
	Kept    int `json:"kept"`
	Missing int `json:"missing"`
	// Results holds one entry per id named (none with --all).
	Results []deadResult `json:"results,omitempty"`
}

// timeText shows a time of the Redis server, in UTC, to the second.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// deadCommand groups the dead-letter commands.
func (a *app) deadCommand() *cobra.Command {
	dead := &cobra.Command{
		Use:   "dead",
		Short: "List, show, requeue and delete dead letters",
		Long: `A dead letter is a message that failed for good: its handler failed on the
last attempt (WorkerConfig.MaxAttempts) or with an error marked mq.Final, or
it was handed out WorkerConfig.QuarantineAfter times without any outcome.
It leaves the queue, and its dead letter keeps its content, the last error,
its attempts and times. These commands list, show, requeue and delete them.`,
	}
	dead.AddCommand(a.deadListCommand(), a.deadShowCommand(), a.deadRequeueCommand(), a.deadDeleteCommand())
	return dead
}

// deadListCommand lists a page of dead letters.
func (a *app) deadListCommand() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "list QUEUE",
		Short: "List a queue's dead letters, newest first, a page at a time",
		Long: `List a queue's dead letters, newest first: id, reason, attempts, time of death
(the Redis server's, UTC), last error and content. A page costs O(log n +
limit) however many there are. The last line gives the --cursor of the next
page; letters that die meanwhile do not shift it. A queue that does not
exist exits with code 3.`,
		Args: args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			if limit < 1 || limit > maxLimit {
				return usageErrorf("--limit must be from 1 to %d", maxLimit)
			}
			queue := args[0]
			if err := queueMustExist(ctx, c, queue); err != nil {
				return err
			}
			counts, err := c.Inspector().QueueCounts(ctx, queue)
			if err != nil {
				return err
			}
			page, err := c.Inspector().DeadLetters(ctx, queue, cursor, limit)
			if errors.Is(err, mq.ErrInvalidOption) {
				// The limit is checked above: only the cursor is left.
				return usageErrorf("--cursor %q: not a cursor of a previous page", cursor)
			} else if err != nil {
				return err
			}
			v := deadListView{Queue: queue, Total: counts.Dead, Cursor: cursor, DeadLetters: make([]deadView, len(page.Items)),
				NextCursor: page.Cursor}
			for i, d := range page.Items {
				v.DeadLetters[i] = newDeadView(queue, d)
			}
			if a.json {
				return printJSON(a.stdout, v)
			}
			return printDeadList(a.stdout, v)
		}),
	}
	cmd.Flags().StringVar(&cursor, "cursor", "", "where the page starts: the cursor a previous page gave")
	cmd.Flags().IntVar(&limit, "limit", 20, "dead letters per page")
	return cmd
}

// errorColumn is how many characters of the last error a table row shows.
const errorColumn = 40

// printDeadList writes a page of dead letters for people.
func printDeadList(w io.Writer, v deadListView) error {
	if len(v.DeadLetters) == 0 {
		if v.Total == 0 {
			fmt.Fprintf(w, "no dead letters in %s\n", safeText(v.Queue))
		} else {
			fmt.Fprintf(w, "%d dead letters in %s, none past this cursor\n", v.Total, safeText(v.Queue))
		}
		return nil
	}
	fmt.Fprintf(w, "%d dead letters in %s, newest first\n\n", v.Total, safeText(v.Queue))
	t := newTable(w)
	row(t, "ID", "REASON", "ATTEMPTS", "DIED", "ERROR", "SIZE", "CONTENT")
	for _, d := range v.DeadLetters {
		row(t, safeText(d.ID), safeText(d.Reason), itoa(d.Attempts), timeText(d.Died),
			safeText(truncate(d.Error, errorColumn)), strconv.Itoa(d.Size), truncate(contentCell(d.contentView), contentColumn))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if v.NextCursor != "" {
		fmt.Fprintf(w, "\nnext page: --cursor %s\n", v.NextCursor)
	}
	return nil
}

// deadShowCommand shows one dead letter.
func (a *app) deadShowCommand() *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "show QUEUE ID",
		Short: "Show one dead letter: its errors, attempts, times and decoded content",
		Long: `Show one dead letter: why it died, the last error's text, its attempts, when
it was first enqueued and when it died (the Redis server's clock, UTC), its
own lock time if any, the error of each of its latest failed attempts (up
to five, with when each failed), and its content decoded from MessagePack by the
library's codec (bytes it refuses are shown as undecodable, quoted).

With --raw, the stored bytes are written to standard output as they are.
A dead letter that is not there exits with code 3.`,
		Args: args(2, 2, "QUEUE ID"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			d, err := c.Inspector().DeadLetter(ctx, queue, id)
			if errors.Is(err, mq.ErrNoDeadLetter) {
				return &exitError{code: exitNotFound, err: fmt.Errorf("no dead letter %s in queue %s", strconv.Quote(id), strconv.Quote(queue))}
			} else if err != nil {
				return err
			}
			v := newDeadView(queue, d)
			switch {
			case raw:
				_, err = a.stdout.Write(v.Data)
				return err
			case a.json:
				return printJSON(a.stdout, v)
			}
			return printDead(a.stdout, v)
		}),
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "write the stored bytes as they are")
	return cmd
}

// printDead writes one dead letter for people.
func printDead(w io.Writer, v deadView) error {
	t := newTable(w)
	row(t, "queue", safeText(v.Queue))
	row(t, "id", safeText(v.ID))
	row(t, "reason", safeText(v.Reason))
	row(t, "error", safeTextLine(v.Error))
	row(t, "attempts", itoa(v.Attempts))
	first := "-"
	if v.FirstEnqueued != nil {
		first = timeText(*v.FirstEnqueued)
	}
	row(t, "first enqueued", first)
	row(t, "died", timeText(v.Died))
	row(t, "lock time", duration(time.Duration(v.LockTimeMS)*time.Millisecond))
	for _, e := range v.AttemptErrors {
		row(t, "attempt "+itoa(e.Attempt), timeText(e.At)+"  "+safeTextLine(e.Error))
	}
	if v.Policy != nil {
		row(t, "policy", safeText(v.Policy.Text))
	}
	contentRows(t, "", v.contentView)
	return t.Flush()
}

// deadTargets checks the arguments of requeue and delete: QUEUE then
// IDs, or QUEUE alone with --all.
func deadTargets(all *bool) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usageErrorf("%s: want QUEUE ID... or QUEUE --all", cmd.Name())
		case *all && len(args) > 1:
			return usageErrorf("%s: give IDs or --all, not both", cmd.Name())
		case !*all && len(args) == 1:
			return usageErrorf("%s: want QUEUE ID... or QUEUE --all", cmd.Name())
		}
		return nil
	}
}

// deadRequeueCommand queues dead letters again.
func (a *app) deadRequeueCommand() *cobra.Command {
	var yes, all bool
	cmd := &cobra.Command{
		Use:   "requeue QUEUE ID... | requeue QUEUE --all",
		Short: "Queue dead letters again, as fresh messages under their ids",
		Long: `Queue dead letters again, each as a fresh message under its id (attempts from
1, first enqueued now, its own lock time kept), and delete the dead letter.
A dead letter whose id the queue holds already is kept, changing nothing.

With --all, every dead letter of the queue, oldest first, in calls of 100,
with progress on standard error; it asks for confirmation on standard input
first unless --yes is given.

Exit codes: 3 when an id named is not a dead letter, else 4 when one was
kept because the queue holds its id; the others are requeued all the same.`,
		Args: deadTargets(&all),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue := args[0]
			if all {
				return a.requeueAll(ctx, c, queue, yes)
			}
			v := deadChangeView{Queue: queue, Results: []deadResult{}}
			for _, id := range args[1:] {
				err := c.Inspector().RequeueDeadLetter(ctx, queue, id)
				res := "requeued"
				switch {
				case err == nil:
					v.Requeued++
				case errors.Is(err, mq.ErrNoDeadLetter):
					res = "missing"
					v.Missing++
				case errors.Is(err, mq.ErrAlreadyQueued):
					res = "kept"
					v.Kept++
				default:
					return fmt.Errorf("after requeueing %d of %d: %w", v.Requeued, len(args)-1, err)
				}
				v.Results = append(v.Results, deadResult{ID: id, Result: res})
			}
			if err := a.printDeadChange(v, "requeued"); err != nil {
				return err
			}
			return v.exit("requeued")
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter of the queue")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (with --all)")
	return cmd
}

// requeueAll requeues every dead letter of queue, after asking.
func (a *app) requeueAll(ctx context.Context, c *mq.Client, queue string, yes bool) error {
	if err := queueMustExist(ctx, c, queue); err != nil {
		return err
	}
	counts, err := c.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		return err
	}
	total := counts.Dead
	v := deadChangeView{Queue: queue}
	if total == 0 {
		return a.printDeadChange(v, "requeued")
	}
	question := fmt.Sprintf("Requeue all %d dead letters of %s?", total, safeText(queue))
	if ok, err := a.confirm(yes, question); err != nil {
		return err
	} else if !ok {
		return notConfirmed()
	}
	p := a.newProgress("requeued", int(total))
	defer p.end()
	v.Requeued, v.Kept, err = c.Inspector().RequeueDeadLetters(ctx, queue, func(requeued, kept int) {
		detail := ""
		if kept > 0 {
			detail = fmt.Sprintf("%d kept", kept)
		}
		p.set(requeued+kept, detail)
	})
	if err != nil {
		return fmt.Errorf("after requeueing %d (%d kept): %w", v.Requeued, v.Kept, err)
	}
	if err := a.printDeadChange(v, "requeued"); err != nil {
		return err
	}
	return v.exit("requeued")
}

// deadDeleteCommand deletes dead letters.
func (a *app) deadDeleteCommand() *cobra.Command {
	var yes, all bool
	cmd := &cobra.Command{
		Use:   "delete QUEUE ID... | delete QUEUE --all",
		Short: "Delete dead letters for good",
		Long: `Delete the named dead letters for good, or with --all every dead letter of
the queue, in one call; --all asks for confirmation on standard input first
unless --yes is given. An id named that is not a dead letter exits with
code 3; the others are deleted all the same.`,
		Args: deadTargets(&all),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue := args[0]
			v := deadChangeView{Queue: queue}
			if all {
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
				counts, err := c.Inspector().QueueCounts(ctx, queue)
				if err != nil {
					return err
				}
				if total := counts.Dead; total > 0 {
					question := fmt.Sprintf("Delete all %d dead letters of %s, for good?", total, safeText(queue))
					if ok, err := a.confirm(yes, question); err != nil {
						return err
					} else if !ok {
						return notConfirmed()
					}
					n, err := c.Inspector().DeleteDeadLetters(ctx, queue)
					if err != nil {
						return err
					}
					v.Deleted = int(n)
				}
				return a.printDeadChange(v, "deleted")
			}
			v.Results = []deadResult{}
			for _, id := range args[1:] {
				deleted, err := c.Inspector().DeleteDeadLetter(ctx, queue, id)
				if err != nil {
					return fmt.Errorf("after deleting %d of %d: %w", v.Deleted, len(args)-1, err)
				}
				res := "deleted"
				if deleted {
					v.Deleted++
				} else {
					res = "missing"
					v.Missing++
				}
				v.Results = append(v.Results, deadResult{ID: id, Result: res})
			}
			if err := a.printDeadChange(v, "deleted"); err != nil {
				return err
			}
			return v.exit("deleted")
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter of the queue")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (with --all)")
	return cmd
}

// printDeadChange writes the answer to a requeue or delete (verb).
func (a *app) printDeadChange(v deadChangeView, verb string) error {
	if a.json {
		return printJSON(a.stdout, v)
	}
	q := safeText(v.Queue)
	if v.Results == nil {
		// --all
		n := v.Requeued + v.Deleted
		switch {
		case n == 0 && v.Kept == 0:
			fmt.Fprintf(a.stdout, "no dead letters in %s\n", q)
		default:
			fmt.Fprintf(a.stdout, "%s %d dead letters of %s\n", verb, n, q)
		}
		if v.Kept > 0 {
			fmt.Fprintf(a.stdout, "kept %d: the queue holds messages of their ids\n", v.Kept)
		}
		return nil
	}
	for _, r := range v.Results {
		id := safeText(r.ID)
		switch r.Result {
		case "missing":
			fmt.Fprintf(a.stdout, "no dead letter %s in %s\n", id, q)
		case "kept":
			fmt.Fprintf(a.stdout, "kept %s: %s holds a message of that id\n", id, q)
		default:
			fmt.Fprintf(a.stdout, "%s %s of %s\n", r.Result, id, q)
		}
	}
	return nil
}

// exit is the error a requeue or delete of named dead letters ends with:
// not found (3) when any was missing, else refused (4) when any was kept.
func (v deadChangeView) exit(verb string) error {
	switch {
	case v.Missing > 0:
		return &exitError{code: exitNotFound, err: fmt.Errorf("%d of the dead letters named are not in queue %s", v.Missing, strconv.Quote(v.Queue))}
	case v.Kept > 0:
		return &exitError{code: exitRefused, err: fmt.Errorf("%d dead letter(s) not %s: queue %s holds messages of their ids", v.Kept, verb, strconv.Quote(v.Queue))}
	}
	return nil
}

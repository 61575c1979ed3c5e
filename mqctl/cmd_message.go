package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// messageCommand shows one message: its status and decoded content.
func (a *app) messageCommand() *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "message QUEUE ID",
		Short: "Show one message: its status, attempts, age and decoded content",
		Long: `Show one message: its status (Carmine's names: queued, queued-with-backoff,
locked, locked-with-requeue, done-awaiting-gc, done-with-backoff,
done-with-requeue, or nil when it is not in the queue), attempts, age, time
left in backoff, the errors of its latest failed attempts (up to five,
oldest first), and its content decoded from MessagePack by the library's
codec, which refuses malformed or hostile bytes: those are shown as
undecodable, quoted. A pending requeue's content is shown too.

With --raw, the stored bytes are written to standard output as they are.
A message not in the queue, or a queue that does not exist, exits with
code 3.`,
		Args: args(2, 2, "QUEUE ID"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			m, err := c.Inspector().Message(ctx, queue, id)
			if err != nil {
				return err
			}
			v := newMessageView(queue, m)
			if v.Status == mq.StatusNone.String() && !v.DeadLetter {
				// Not in the queue: first, is there such a queue at all?
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
			}
			if v.Status == mq.StatusNone.String() {
				if a.json {
					_ = printJSON(a.stdout, v)
				}
				why := "never was, deleted, or handled and collected"
				if v.DeadLetter {
					why = "it is a dead letter: mqctl dead show " + safeText(queue) + " " + safeText(id)
				}
				return &exitError{code: exitNotFound, err: fmt.Errorf("message %s is not in queue %s (%s)", strconv.Quote(id), strconv.Quote(queue), why)}
			}
			switch {
			case raw:
				_, err = a.stdout.Write(v.Data)
				return err
			case a.json:
				return printJSON(a.stdout, v)
			}
			return printMessage(a.stdout, v)
		}),
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "write the stored bytes as they are")
	return cmd
}

// printMessage writes one message for people.
func printMessage(w io.Writer, v messageView) error {
	t := newTable(w)
	row(t, "queue", safeText(v.Queue))
	row(t, "id", safeText(v.ID))
	row(t, "status", v.Status)
	row(t, "attempts", itoa(v.Attempts))
	row(t, "age", duration(v.age()))
	row(t, "backoff", duration(v.backoff()))
	if !v.LockedUntil.IsZero() {
		row(t, "locked until", v.LockedUntil.Format(time.RFC3339Nano))
	}
	if v.LockTimeMS > 0 {
		row(t, "lock time", duration(time.Duration(v.LockTimeMS)*time.Millisecond))
	}
	for _, k := range slices.Sorted(maps.Keys(v.Metadata)) {
		row(t, "metadata "+safeText(k), safeText(v.Metadata[k]))
	}
	if v.Policy != nil {
		row(t, "policy", safeText(v.Policy.Text))
	}
	for _, e := range v.AttemptErrors {
		row(t, "attempt "+itoa(e.Attempt), timeText(e.At)+"  "+safeTextLine(e.Error))
	}
	if v.Priority != "" && v.Priority != mq.PriorityNormal.String() {
		row(t, "priority", v.Priority)
	}
	if v.DeadLetter {
		row(t, "dead letter", "yes (mqctl dead show)")
	}
	if p := v.Progress; p != nil {
		text := strconv.FormatFloat(p.N, 'g', -1, 64)
		if p.Note != "" {
			text += "  " + safeTextLine(p.Note)
		}
		row(t, "progress", text+"  ("+timeText(p.At)+")")
	}
	if !v.CancelRequested.IsZero() {
		row(t, "cancel asked", timeText(v.CancelRequested))
	}
	contentRows(t, "", v.contentView)
	if v.Requeue != nil {
		contentRows(t, "requeue ", *v.Requeue)
	}
	return t.Flush()
}

// contentRows writes the rows of stored content, each name prefixed.
func contentRows(w io.Writer, prefix string, c contentView) {
	row(w, prefix+"size", fmt.Sprintf("%d bytes", c.Size))
	if c.DecodeError != "" {
		row(w, prefix+"content", "undecodable: "+safeTextLine(c.DecodeError))
		row(w, prefix+"bytes", quoteBytes(c.Data, 256))
		return
	}
	row(w, prefix+"content", contentText(c.Content))
}

// safeTextLine is an error message for a table cell, escaped but not
// quoted.
func safeTextLine(s string) string { return escapeUnsafe(oneLine(s), "") }

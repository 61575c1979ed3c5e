package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// maxLimit bounds --limit: the library's largest page (QueueMessages), so
// that one page is one modest script call.
const maxLimit = mq.MaxPageSize

// contentColumn is how many characters of content a table row shows.
const contentColumn = 60

// showView is a queue's counts and one page of its messages.
type showView struct {
	queueView
	Messages []messageView `json:"messages"`
	// NextCursor is the --cursor of the next page; "" after the last.
	NextCursor string `json:"next_cursor"`
	// HandoffsPending counts the hand-off records (follow-ups, batch
	// ticks and completions) waiting for a relay (docs/protocol.md §22).
	HandoffsPending int64 `json:"handoffs_pending"`
}

// showCommand shows a queue's counts and a page of its messages.
func (a *app) showCommand() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "show QUEUE",
		Short: "Show a queue's counts and its messages, a page at a time",
		Long: `Show a queue's counts and a page of its messages: id, status, attempts, age,
time left in backoff, stored size and content (decoded from MessagePack by
the library's codec; bytes it refuses are shown as undecodable, quoted).

Messages come in the order Redis keeps them (HSCAN, by the library's
QueueMessages), not oldest first; a page costs a scan step or a few and one
script call whatever the queue's size. The last line gives the --cursor of
the next page. A queue that does not exist exits with code 3.`,
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
			page, err := c.Inspector().QueueMessages(ctx, queue, cursor, limit)
			if errors.Is(err, mq.ErrInvalidOption) {
				// The limit is checked above: only the cursor is left.
				return usageErrorf("--cursor %q: not a cursor of a previous page", cursor)
			} else if err != nil {
				return err
			}
			msgs := make([]messageView, len(page.Items))
			for i, m := range page.Items {
				msgs[i] = newMessageView(queue, m)
			}
			v := showView{queueView: newQueueView(queue, counts), Messages: msgs, NextCursor: page.Cursor}
			v.HandoffsPending = counts.HandoffsPending
			if a.json {
				return printJSON(a.stdout, v)
			}
			return printShow(a.stdout, v)
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "messages per page")
	cmd.Flags().StringVar(&cursor, "cursor", "", "where the page starts: the cursor a previous page gave")
	return cmd
}

// printShow writes a showView for people.
func printShow(w io.Writer, v showView) error {
	t := newTable(w)
	row(t, "queue", safeText(v.Queue))
	row(t, "paused", yesNo(v.Paused))
	row(t, "queued", itoa(v.Queued))
	if v.ReadyHigh > 0 || v.ReadyLow > 0 {
		// Upper bounds (mq.QueueCounts): shown only for a queue using
		// priorities.
		row(t, "  ready high", "<= "+itoa(v.ReadyHigh))
		row(t, "  ready low", "<= "+itoa(v.ReadyLow))
	}
	row(t, "locked", itoa(v.Locked))
	row(t, "backoff", itoa(v.Backoff))
	row(t, "done", itoa(v.Done))
	row(t, "total", itoa(v.Total))
	row(t, "dead", itoa(v.Dead))
	if v.HandoffsPending > 0 {
		row(t, "hand-offs pending", itoa(v.HandoffsPending))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(v.Messages) == 0 {
		fmt.Fprintln(w, "no messages")
	} else {
		t = newTable(w)
		row(t, "ID", "STATUS", "ATTEMPTS", "AGE", "BACKOFF", "SIZE", "CONTENT")
		for _, m := range v.Messages {
			row(t, safeText(m.ID), m.Status, itoa(m.Attempts), duration(m.age()), duration(m.backoff()),
				strconv.Itoa(m.Size), truncate(contentCell(m.contentView), contentColumn))
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	if v.NextCursor != "" {
		fmt.Fprintf(w, "\nnext page: --cursor %s\n", v.NextCursor)
	}
	return nil
}

// contentCell is content for one line: JSON when decoded, the quoted
// bytes marked as undecodable otherwise.
func contentCell(c contentView) string {
	if c.DecodeError != "" {
		return "(undecodable) " + quoteBytes(c.Data, contentColumn)
	}
	return contentText(c.Content)
}

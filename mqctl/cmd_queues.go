package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// queueView is one queue's counts as mqctl shows them; its JSON field
// names are stable, for scripts.
type queueView struct {
	Queue   string `json:"queue"`
	Queued  int64  `json:"queued"`
	Locked  int64  `json:"locked"`
	Backoff int64  `json:"backoff"`
	// Done counts messages handled and kept: in a dedupe window, or
	// handled by a Carmine worker and not yet collected.
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	// Dead counts the queue's dead letters, which are not in Total.
	Dead   int64 `json:"dead"`
	Paused bool  `json:"paused"`
	// ReadyHigh and ReadyLow: of the ready messages, at most how many
	// are high and low (mq.QueueCounts).
	ReadyHigh int64 `json:"ready_high"`
	ReadyLow  int64 `json:"ready_low"`
}

func newQueueView(queue string, c mq.QueueCounts) queueView {
	return queueView{Queue: queue, Queued: c.Queued, Locked: c.Locked, Backoff: c.Backoff,
		Done: c.Done, Total: c.Total, Dead: c.Dead, Paused: c.Paused, ReadyHigh: c.ReadyHigh, ReadyLow: c.ReadyLow}
}

// queuesCommand lists the queues with their counts.
func (a *app) queuesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "queues [PATTERN]",
		Short: "List the queues (whose names match the glob PATTERN) with their counts",
		Long: `List the queues that exist, with their counts: queued (ready for a handler),
locked (being handled), backoff (delayed or waiting for a retry), done
(handled and kept, in a dedupe window), total (each message once), dead
(dead letters, not in total), and whether the queue is paused. PATTERN is a
glob ("email*"); the default is every queue.

A queue exists from the first enqueue, worker or pause of
github.com/gocarmine/mq that names it until mqctl clear removes it, empty
or not (the queue registry, the library's QueueNames); a queue only
Carmine's producers wrote is found by SCAN (on every master of a cluster,
never KEYS) while it holds messages or dead letters.`,
		Args: args(0, 1, "at most one PATTERN"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			names, err := c.Inspector().QueueNames(ctx, pattern)
			if err != nil {
				return err
			}
			views := make([]queueView, 0, len(names))
			for _, q := range names {
				counts, err := c.Inspector().QueueCounts(ctx, q)
				if err != nil {
					return err
				}
				views = append(views, newQueueView(q, counts))
			}
			if a.json {
				return printJSON(a.stdout, views)
			}
			if len(views) == 0 {
				fmt.Fprintf(a.stdout, "no queues on %s\n", a.conn.server())
				return nil
			}
			t := newTable(a.stdout)
			row(t, "QUEUE", "QUEUED", "LOCKED", "BACKOFF", "DONE", "TOTAL", "DEAD", "PAUSED")
			for _, v := range views {
				row(t, safeText(v.Queue), itoa(v.Queued), itoa(v.Locked), itoa(v.Backoff), itoa(v.Done), itoa(v.Total), itoa(v.Dead), yesNo(v.Paused))
			}
			return t.Flush()
		}),
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

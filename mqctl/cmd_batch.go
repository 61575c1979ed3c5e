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

// batchView is a batch's progress (docs/protocol.md §22).
type batchView struct {
	Queue        string    `json:"queue"`
	Batch        string    `json:"batch"`
	CompletionID string    `json:"completion_id"`
	Members      int64     `json:"members"`
	Succeeded    int64     `json:"succeeded"`
	Dead         int64     `json:"dead"`
	Cancelled    int64     `json:"cancelled"`
	Finished     int64     `json:"finished"`
	Created      time.Time `json:"created"`
	// Done is when its last member finished; absent while it runs.
	Done *time.Time `json:"done,omitempty"`
}

// batchCommand shows a batch's progress.
func (a *app) batchCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "batch QUEUE BATCH",
		Short: "Show a batch's progress: its members finished, succeeded and dead",
		Long: `Show the progress of a batch (Client.EnqueueBatch), read from the queue that
receives its completion message: how many members it has, how many of them
succeeded and how many became dead letters (a member refused at enqueue
counts as dead), when it was enqueued and, once every member finished, when
it completed (its completion message is then enqueued, exactly once). An
unknown batch exits with code 3.`,
		Args: args(2, 2, "QUEUE BATCH"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			info, err := c.Inspector().Batch(ctx, queue, id)
			if errors.Is(err, mq.ErrNoBatch) {
				return &exitError{code: exitNotFound, err: fmt.Errorf("batch %s not found in queue %s", strconv.Quote(id), strconv.Quote(queue))}
			} else if err != nil {
				return err
			}
			v := batchView{Queue: queue, Batch: id, CompletionID: info.CompletionID, Members: info.Members,
				Succeeded: info.Succeeded, Dead: info.Dead, Cancelled: info.Cancelled, Finished: info.Finished(), Created: info.Created}
			if !info.Done.IsZero() {
				v.Done = &info.Done
			}
			if a.json {
				return printJSON(a.stdout, v)
			}
			return printBatch(a.stdout, v)
		}),
	}
}

// printBatch writes a batch's progress for people.
func printBatch(w io.Writer, v batchView) error {
	t := newTable(w)
	row(t, "queue", safeText(v.Queue))
	row(t, "batch", safeText(v.Batch))
	row(t, "completion", safeText(v.CompletionID))
	row(t, "members", itoa(v.Members))
	row(t, "finished", itoa(v.Finished))
	row(t, "succeeded", itoa(v.Succeeded))
	row(t, "dead", itoa(v.Dead))
	row(t, "cancelled", itoa(v.Cancelled))
	row(t, "created", timeText(v.Created))
	done := "running"
	if v.Done != nil {
		done = timeText(*v.Done)
	}
	row(t, "done", done)
	return t.Flush()
}

package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// cancelView is the answer to a cancel.
type cancelView struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	// Result is "removed", "signalled", "done" or "not_found"
	// (mq.CancelResult).
	Result string `json:"result"`
}

// cancelCommand cancels one message from this process (docs/protocol.md
// §20).
func (a *app) cancelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel QUEUE ID",
		Short: "Cancel one message: a queued one never runs, a running one is stopped",
		Long: `Cancel one message. A queued message (delayed or waiting out a retry's
backoff too) is deleted and never runs: "removed". A message being handled
has its handler's context ended (cause mq.ErrCancelled) by its worker,
wherever it runs, and its outcome recorded as cancelled, neither retried nor
a dead letter: "signalled". A message done already is left: "done". A
Carmine worker holding the message does not hear of a cancel.

A message not in the queue, or a queue that does not exist, exits with
code 3.`,
		Args: args(2, 2, "QUEUE ID"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			r, err := c.Cancel(ctx, queue, id)
			if err != nil {
				return err
			}
			if r == mq.CancelNotFound {
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
			}
			if a.json {
				if err := printJSON(a.stdout, cancelView{Queue: queue, ID: id, Result: string(r)}); err != nil {
					return err
				}
			} else {
				switch r {
				case mq.CancelRemoved:
					fmt.Fprintf(a.stdout, "cancelled %s in %s: it was queued, and is deleted\n", safeText(id), safeText(queue))
				case mq.CancelSignalled:
					fmt.Fprintf(a.stdout, "cancelled %s in %s: its handler is told to stop; its outcome will be cancelled\n", safeText(id), safeText(queue))
				case mq.CancelDone:
					fmt.Fprintf(a.stdout, "%s in %s is done already: nothing to cancel\n", safeText(id), safeText(queue))
				}
			}
			if r == mq.CancelNotFound {
				return &exitError{code: exitNotFound, err: fmt.Errorf("message %s is not in queue %s", strconv.Quote(id), strconv.Quote(queue))}
			}
			return nil
		}),
	}
}

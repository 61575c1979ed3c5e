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

// resultView is one message's result as mqctl shows it; its JSON field
// names are stable, for scripts.
type resultView struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	// At is when the message's success was recorded, by the Redis
	// server's clock.
	At time.Time `json:"at"`
	contentView
}

// resultCommand shows the result a handler gave with a message's success.
func (a *app) resultCommand() *cobra.Command {
	var raw bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "result QUEUE ID",
		Short: "Show the result a handler gave with a message's success",
		Long: `Show the result a handler gave with a message's success (Message.SetResult):
when the success was recorded (the Redis server's clock, UTC) and the result
decoded from MessagePack by the library's codec (bytes it refuses are shown
as undecodable, quoted). Results are kept for WorkerConfig.ResultMaxAge, at
most ResultMaxCount of them per queue.

With --wait, waits up to that long for a message still queued or being
handled. With --raw, the stored bytes are written to standard output as they
are. A message with no result exits with code 3, as does one still pending
(without --wait, or when the wait ran out).`,
		Args: args(2, 2, "QUEUE ID"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			var r mq.Result
			var err error
			if wait > 0 {
				wctx, cancel := context.WithTimeout(ctx, wait)
				r, err = c.WaitResult(wctx, queue, id)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					err = fmt.Errorf("%w: still no result after %v", mq.ErrResultPending, wait)
				}
			} else {
				r, err = c.Inspector().Result(ctx, queue, id)
			}
			switch {
			case errors.Is(err, mq.ErrNoResult):
				return &exitError{code: exitNotFound, err: fmt.Errorf("no result of %s in queue %s", strconv.Quote(id), strconv.Quote(queue))}
			case errors.Is(err, mq.ErrResultPending):
				return &exitError{code: exitNotFound, err: fmt.Errorf("no result of %s in queue %s yet: the message is pending", strconv.Quote(id), strconv.Quote(queue))}
			case err != nil:
				return err
			}
			v := resultView{Queue: queue, ID: r.ID, At: r.At.UTC(), contentView: newContent(r.Data)}
			switch {
			case raw:
				_, err = a.stdout.Write(v.Data)
				return err
			case a.json:
				return printJSON(a.stdout, v)
			}
			return printResult(a.stdout, v)
		}),
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "write the stored bytes as they are")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a pending message's result")
	return cmd
}

// printResult writes one result for people.
func printResult(w io.Writer, v resultView) error {
	t := newTable(w)
	row(t, "queue", safeText(v.Queue))
	row(t, "id", safeText(v.ID))
	row(t, "recorded", timeText(v.At))
	contentRows(t, "", v.contentView)
	return t.Flush()
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// deleteView is the answer to a delete.
type deleteView struct {
	Queue   string `json:"queue"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// deleteCommand deletes one message.
func (a *app) deleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete QUEUE ID",
		Short: "Delete one message, whatever its status",
		Long: `Delete one message, whatever its status: its content, lock, backoff or
dedupe window, attempts and any pending requeue. A handler still holding it
finds its outcome fenced off. A message not in the queue, or a queue that
does not exist, exits with code 3.`,
		Args: args(2, 2, "QUEUE ID"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, id := args[0], args[1]
			deleted, err := c.Inspector().DeleteMessage(ctx, queue, id)
			if err != nil {
				return err
			}
			if !deleted {
				// Not in the queue: first, is there such a queue at all?
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
			}
			v := deleteView{Queue: queue, ID: id, Deleted: deleted}
			if a.json {
				if err := printJSON(a.stdout, v); err != nil {
					return err
				}
			} else if deleted {
				fmt.Fprintf(a.stdout, "deleted %s from %s\n", safeText(id), safeText(queue))
			}
			if !deleted {
				return &exitError{code: exitNotFound, err: fmt.Errorf("message %s is not in queue %s", strconv.Quote(id), strconv.Quote(queue))}
			}
			return nil
		}),
	}
}

// pauseView is the answer to a pause or a resume.
type pauseView struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
	// Changed is false when the queue was paused (or running) already.
	Changed bool `json:"changed"`
}

// pauseCommand pauses (pause true) or resumes a queue.
func (a *app) pauseCommand(pause bool) *cobra.Command {
	use, short, long := "resume QUEUE", "Resume a paused queue",
		`End a pause of the queue: its workers hand messages out again (a sleeping
one at once, the others within their end-of-queue sleep). A queue that does
not exist exits with code 3.`
	if pause {
		use, short, long = "pause QUEUE", "Pause a queue for every worker of github.com/gocarmine/mq, in every process",
			`Pause the queue for every worker of github.com/gocarmine/mq, in every process:
they record the outcomes of handlings in flight and hand nothing out until
resume. Enqueues go on. Carmine's own workers do not know of the pause and go
on working.

A queue that does not exist (see mqctl queues) is refused with exit code 3,
so that a typo creates nothing; --create pauses it all the same, before its
first message or worker.`
	}
	var create bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue := args[0]
			if !create {
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
			}
			op := c.Inspector().ResumeQueue
			if pause {
				op = c.Inspector().PauseQueue
			}
			changed, err := op(ctx, queue)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, pauseView{Queue: queue, Paused: pause, Changed: changed})
			}
			state := "running"
			if pause {
				state = "paused"
			}
			if changed {
				fmt.Fprintf(a.stdout, "%s is %s\n", safeText(queue), state)
			} else {
				fmt.Fprintf(a.stdout, "%s was %s already\n", safeText(queue), state)
			}
			return nil
		}),
	}
	if pause {
		cmd.Flags().BoolVar(&create, "create", false, "pause the queue even if it does not exist yet")
	}
	return cmd
}

// clearView is the answer to a clear.
type clearView struct {
	// Cleared names the queues whose keys were deleted.
	Cleared []string `json:"cleared"`
	// Empty names the queues asked for that held nothing.
	Empty []string `json:"empty"`
}

// clearCommand deletes every key of queues, after asking.
func (a *app) clearCommand() *cobra.Command {
	var yes, all bool
	cmd := &cobra.Command{
		Use:   "clear QUEUE... | clear --all",
		Short: "Delete every key of the named queues (or of all), for good, after asking",
		Long: `Delete every key of the named queues, or with --all of every queue found,
for good: messages, locks, backoffs, dead letters, everything. It asks for
confirmation on standard input first unless --yes is given; any answer but
"y" or "yes" changes nothing and exits with code 1. Progress goes to
standard error, a queue at a time.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageErrorf("clear: give QUEUE names or --all, not both")
			case !all && len(args) == 0:
				return usageErrorf("clear: want QUEUE... or --all")
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queues := args
			if all {
				var err error
				if queues, err = c.Inspector().QueueNames(ctx, ""); err != nil {
					return err
				}
				if len(queues) == 0 {
					return a.printClear(clearView{Cleared: []string{}, Empty: []string{}})
				}
			}
			for _, q := range queues {
				if err := mq.ValidateQueueName(q); err != nil {
					return err
				}
			}
			shown := make([]string, len(queues))
			for i, q := range queues {
				shown[i] = safeText(q)
			}
			question := fmt.Sprintf("Delete every key of %d queue(s), for good: %s?", len(queues), strings.Join(shown, ", "))
			if ok, err := a.confirm(yes, question); err != nil {
				return err
			} else if !ok {
				return notConfirmed()
			}
			v := clearView{Cleared: []string{}, Empty: []string{}}
			p := a.newProgress("cleared", len(queues))
			defer p.end()
			for _, q := range queues {
				cleared, err := c.Inspector().ClearQueues(ctx, q)
				if err != nil {
					return fmt.Errorf("after clearing %d of %d queues: %w", len(v.Cleared)+len(v.Empty), len(queues), err)
				}
				if len(cleared) > 0 {
					v.Cleared = append(v.Cleared, q)
				} else {
					v.Empty = append(v.Empty, q)
				}
				p.step(safeText(q))
			}
			return a.printClear(v)
		}),
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&all, "all", false, "clear every queue found (see 'mqctl queues')")
	return cmd
}

// printClear writes the answer to a clear.
func (a *app) printClear(v clearView) error {
	if a.json {
		return printJSON(a.stdout, v)
	}
	if len(v.Cleared) == 0 && len(v.Empty) == 0 {
		fmt.Fprintf(a.stdout, "no queues on %s\n", a.conn.server())
	}
	for _, q := range v.Cleared {
		fmt.Fprintf(a.stdout, "cleared %s\n", safeText(q))
	}
	for _, q := range v.Empty {
		fmt.Fprintf(a.stdout, "%s held nothing\n", safeText(q))
	}
	return nil
}

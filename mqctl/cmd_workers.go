package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// workerView is one live worker as mqctl shows it; its JSON field names
// are stable, for scripts. Times are the Redis server's, in UTC.
type workerView struct {
	ID       string     `json:"id"`
	Queue    string     `json:"queue"`
	Host     string     `json:"host"`
	PID      int        `json:"pid"`
	Version  string     `json:"version"`
	Started  time.Time  `json:"started"`
	LastPoll *time.Time `json:"last_poll"` // null before its first poll
	LastBeat time.Time  `json:"last_beat"`
	Expires  time.Time  `json:"expires"`
	// HandlersBusy is how many of its HandlerThreads ran a handler at its
	// last heartbeat.
	HandlersBusy   int `json:"handlers_busy"`
	HandlerThreads int `json:"handler_threads"`
	WorkerThreads  int `json:"worker_threads"`
	// Queues and Strict: the queues of a multi-queue worker, with their
	// weights, and its order (mq.LiveWorker); absent for a worker of one
	// queue.
	Queues []mq.QueueWeight `json:"queues,omitempty"`
	Strict bool             `json:"strict,omitempty"`
}

// queuesText names a multi-queue worker's queues: "a > b (strict)" or
// "a:3, b:1"; "" for a worker of one queue.
func (v workerView) queuesText() string {
	if len(v.Queues) == 0 {
		return ""
	}
	parts := make([]string, len(v.Queues))
	for i, q := range v.Queues {
		parts[i] = safeText(q.Queue)
		if !v.Strict {
			parts[i] += ":" + strconv.Itoa(q.Weight)
		}
	}
	if v.Strict {
		return strings.Join(parts, " > ") + " (strict)"
	}
	return strings.Join(parts, ", ")
}

func newWorkerView(w mq.LiveWorker) workerView {
	v := workerView{ID: w.ID, Queue: w.Queue, Host: w.Host, PID: w.PID, Version: w.Version,
		Started: w.Started.UTC(), LastBeat: w.LastBeat.UTC(), Expires: w.Expires.UTC(),
		HandlersBusy: w.HandlersBusy, HandlerThreads: w.HandlerThreads, WorkerThreads: w.WorkerThreads,
		Queues: w.Queues, Strict: w.Strict}
	if !w.LastPoll.IsZero() {
		t := w.LastPoll.UTC()
		v.LastPoll = &t
	}
	return v
}

// workersCommand lists the live workers of a queue, or of every queue.
func (a *app) workersCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "workers [QUEUE]",
		Short: "List the live workers of a queue, or of every queue, in every process (host, pid, started, last poll, busy handlers)",
		Long: `List the running workers of QUEUE, or without QUEUE of every queue (those
mqctl queues lists), in every process, oldest first, as their heartbeats in
Redis tell them (the library's Inspector.Workers and AllWorkers): worker
id, queue, host, process id, library version, when it started, its last
poll and its last heartbeat (the Redis server's clock, UTC), and how many
of its handlers were busy at that heartbeat. A worker leaves the list as
soon as it stops; one whose process died, once its heartbeat runs out (20
seconds). Carmine's workers keep no heartbeat and are not listed. A QUEUE
that does not exist exits with code 3.`,
		Args: args(0, 1, "at most one QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			var live []mq.LiveWorker
			var err error
			if len(args) == 0 {
				live, err = c.Inspector().AllWorkers(ctx)
			} else if err = queueMustExist(ctx, c, args[0]); err == nil {
				live, err = c.Inspector().Workers(ctx, args[0])
			}
			if err != nil {
				return err
			}
			views := make([]workerView, 0, len(live))
			for _, w := range live {
				views = append(views, newWorkerView(w))
			}
			if a.json {
				return printJSON(a.stdout, views)
			}
			if len(views) == 0 {
				if len(args) == 0 {
					fmt.Fprintf(a.stdout, "no live workers on %s\n", a.conn.server())
				} else {
					fmt.Fprintf(a.stdout, "no live workers of %s\n", safeText(args[0]))
				}
				return nil
			}
			t := newTable(a.stdout)
			all := len(args) == 0 // every queue's: a queue column
			head := []string{"ID", "HOST", "PID", "VERSION", "STARTED", "LAST POLL", "LAST BEAT", "BUSY"}
			if all {
				head = append([]string{"QUEUE"}, head...)
			}
			multi := false // a multi-queue worker among them: a column of its queues
			for _, v := range views {
				multi = multi || len(v.Queues) > 0
			}
			if multi {
				head = append(head, "QUEUES")
			}
			row(t, head...)
			for _, v := range views {
				lastPoll := "-"
				if v.LastPoll != nil {
					lastPoll = timeText(*v.LastPoll)
				}
				cells := []string{safeText(v.ID), safeText(v.Host), strconv.Itoa(v.PID), safeText(v.Version),
					timeText(v.Started), lastPoll, timeText(v.LastBeat),
					fmt.Sprintf("%d/%d", v.HandlersBusy, v.HandlerThreads)}
				if all {
					cells = append([]string{safeText(v.Queue)}, cells...)
				}
				if multi {
					cells = append(cells, v.queuesText())
				}
				row(t, cells...)
			}
			return t.Flush()
		}),
	}
}

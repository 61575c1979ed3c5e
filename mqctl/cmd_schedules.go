package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// scheduleView is one schedule as mqctl shows it; its JSON field names are
// stable, for scripts. Next is the Redis server's time, in UTC, null while
// paused.
type scheduleView struct {
	Queue    string            `json:"queue"`
	Name     string            `json:"name"`
	Cron     string            `json:"cron,omitempty"`
	Every    string            `json:"every,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Paused   bool              `json:"paused"`
	Next     *time.Time        `json:"next"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Message is the stored (encoded) message, as bytes: base64 in JSON.
	Message []byte `json:"message"`
}

func newScheduleView(queue string, s mq.ScheduleInfo) scheduleView {
	v := scheduleView{Queue: queue, Name: s.Name, Cron: s.Cron, Zone: s.Zone, Paused: s.Paused,
		Metadata: s.Metadata, Message: s.Message}
	if s.Every > 0 {
		v.Every = s.Every.String()
	}
	if !s.Next.IsZero() {
		t := s.Next.UTC()
		v.Next = &t
	}
	return v
}

// schedulesCommand groups the commands of a queue's schedules.
func (a *app) schedulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List, pause, resume and delete a queue's periodic schedules",
		Long: `A queue's schedules enqueue a message at each tick of a cron expression or a
fixed interval, once per tick whatever the number of schedulers (every
worker of github.com/gocarmine/mq runs one). They are set by the library
(Inspector.SetSchedule); these commands list and administer them.`,
	}
	cmd.AddCommand(a.schedulesListCommand(), a.scheduleActCommand("pause"), a.scheduleActCommand("resume"),
		a.scheduleActCommand("delete"))
	return cmd
}

func (a *app) schedulesListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list QUEUE",
		Short: "List the queue's schedules: name, cron or interval, zone, next tick, paused",
		Args:  args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			list, err := c.Inspector().Schedules(ctx, args[0])
			if err != nil {
				return err
			}
			if len(list) == 0 {
				// None: first, is there such a queue at all?
				if err := queueMustExist(ctx, c, args[0]); err != nil {
					return err
				}
			}
			views := make([]scheduleView, 0, len(list))
			for _, s := range list {
				views = append(views, newScheduleView(args[0], s))
			}
			if a.json {
				return printJSON(a.stdout, views)
			}
			if len(views) == 0 {
				fmt.Fprintf(a.stdout, "no schedules of %s\n", safeText(args[0]))
				return nil
			}
			t := newTable(a.stdout)
			row(t, "NAME", "WHEN", "ZONE", "NEXT", "PAUSED", "MESSAGE")
			for _, v := range views {
				when, next := "every "+v.Every, "-"
				if v.Cron != "" {
					when = strconv.Quote(v.Cron)
				}
				if v.Next != nil {
					next = timeText(*v.Next)
				}
				zone := v.Zone
				if zone == "" {
					zone = "-"
				}
				row(t, safeText(v.Name), when, safeText(zone), next, yesNo(v.Paused), quoteBytes(v.Message, 40))
			}
			return t.Flush()
		}),
	}
}

// scheduleActView is the answer to a pause, resume or delete of a
// schedule.
type scheduleActView struct {
	Queue string `json:"queue"`
	Name  string `json:"name"`
	// Action is "pause", "resume" or "delete"; Changed is false when the
	// schedule was paused (or running) already.
	Action  string `json:"action"`
	Changed bool   `json:"changed"`
}

func (a *app) scheduleActCommand(action string) *cobra.Command {
	short := map[string]string{
		"pause":  "Pause a schedule: no tick is enqueued until resume",
		"resume": "Resume a paused schedule from its next tick after now (the paused ticks are not caught up)",
		"delete": "Delete a schedule (the messages it enqueued stay)",
	}[action]
	return &cobra.Command{
		Use:   action + " QUEUE NAME",
		Short: short,
		Long:  short + ". A schedule the queue does not have exits with code 3.",
		Args:  args(2, 2, "QUEUE NAME"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			queue, name := args[0], args[1]
			in := c.Inspector()
			var changed bool
			var err error
			switch action {
			case "pause":
				changed, err = in.PauseSchedule(ctx, queue, name)
			case "resume":
				changed, err = in.ResumeSchedule(ctx, queue, name)
			default:
				err, changed = in.DeleteSchedule(ctx, queue, name), true
			}
			if errors.Is(err, mq.ErrUnknownSchedule) {
				if err := queueMustExist(ctx, c, queue); err != nil {
					return err
				}
				return &exitError{code: exitNotFound, err: fmt.Errorf("queue %s has no schedule %s", strconv.Quote(queue), strconv.Quote(name))}
			}
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, scheduleActView{Queue: queue, Name: name, Action: action, Changed: changed})
			}
			past := map[string]string{"pause": "paused", "resume": "running", "delete": "deleted"}[action]
			if changed {
				fmt.Fprintf(a.stdout, "schedule %s of %s is %s\n", safeText(name), safeText(queue), past)
			} else {
				fmt.Fprintf(a.stdout, "schedule %s of %s was %s already\n", safeText(name), safeText(queue), past)
			}
			return nil
		}),
	}
}

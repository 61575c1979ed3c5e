package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// limitsView is a queue's limits as mqctl shows them; its JSON field names
// are stable, for scripts. Rates read as "100/1s", "+5" for a burst of 5,
// "none" for no limit; concurrency 0 is none.
type limitsView struct {
	Queue          string `json:"queue"`
	Rate           string `json:"rate"`
	KeyRate        string `json:"key_rate"`
	Concurrency    int    `json:"concurrency"`
	KeyConcurrency int    `json:"key_concurrency"`
	SlotsHeld      int64  `json:"slots_held"`
	Parked         int64  `json:"parked"`
}

// limitsCommand groups show, set and clear of a queue's limits.
func (a *app) limitsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "Show, set and clear a queue's rate and concurrency limits",
		Long: `A queue's limits bind every worker of github.com/gocarmine/mq on it, in every
process, on the Redis server's clock: a rate for the queue and per limit key
(EnqueueOptions.LimitKey), and a concurrency limit for the queue and per key.
Carmine's workers ignore them.`,
	}
	cmd.AddCommand(a.limitsShowCommand(), a.limitsSetCommand(), a.limitsClearCommand())
	return cmd
}

func (a *app) showLimits(ctx context.Context, c *mq.Client, queue string) error {
	st, err := c.Inspector().Limits(ctx, queue)
	if err != nil {
		return err
	}
	v := limitsView{Queue: queue, Rate: st.Limits.Rate.String(), KeyRate: st.Limits.KeyRate.String(),
		Concurrency: st.Limits.Concurrency, KeyConcurrency: st.Limits.KeyConcurrency,
		SlotsHeld: st.SlotsHeld, Parked: st.Parked}
	if a.json {
		return printJSON(a.stdout, v)
	}
	conc := func(n int) string {
		if n == 0 {
			return "none"
		}
		return strconv.Itoa(n)
	}
	t := newTable(a.stdout)
	row(t, "QUEUE", "RATE", "KEY RATE", "CONCURRENCY", "KEY CONCURRENCY", "SLOTS HELD", "PARKED")
	row(t, safeText(queue), v.Rate, v.KeyRate, conc(v.Concurrency), conc(v.KeyConcurrency),
		strconv.FormatInt(v.SlotsHeld, 10), strconv.FormatInt(v.Parked, 10))
	return t.Flush()
}

func (a *app) limitsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show QUEUE",
		Short: "Show the queue's limits, the slots held and the messages parked",
		Args:  args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			if err := queueMustExist(ctx, c, args[0]); err != nil {
				return err
			}
			return a.showLimits(ctx, c, args[0])
		}),
	}
}

func (a *app) limitsSetCommand() *cobra.Command {
	var rate, keyRate string
	var conc, keyConc int
	cmd := &cobra.Command{
		Use:   "set QUEUE",
		Short: "Set the queue's limits (those not given are none): --rate 100/1s[+burst] --key-rate --concurrency --key-concurrency",
		Args:  args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			var l mq.Limits
			var err error
			if l.Rate, err = mq.ParseRate(rate); err != nil {
				return fmt.Errorf("--rate: %w", err)
			}
			if l.KeyRate, err = mq.ParseRate(keyRate); err != nil {
				return fmt.Errorf("--key-rate: %w", err)
			}
			l.Concurrency, l.KeyConcurrency = conc, keyConc
			if err := c.Inspector().SetLimits(ctx, args[0], l); err != nil {
				return err
			}
			return a.showLimits(ctx, c, args[0])
		}),
	}
	cmd.Flags().StringVar(&rate, "rate", "", "the queue's rate: N/period[+burst], such as 100/1s or 5/1m+10")
	cmd.Flags().StringVar(&keyRate, "key-rate", "", "the rate per limit key, as --rate")
	cmd.Flags().IntVar(&conc, "concurrency", 0, "the most messages of the queue handled at once (0: none)")
	cmd.Flags().IntVar(&keyConc, "key-concurrency", 0, "the most messages of one limit key handled at once (0: none)")
	return cmd
}

func (a *app) limitsClearCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "clear QUEUE",
		Short: "Remove the queue's limits; parked messages go back to be handed out",
		Args:  args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			if err := c.Inspector().ClearLimits(ctx, args[0]); err != nil {
				return err
			}
			return a.showLimits(ctx, c, args[0])
		}),
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gocarmine/mq"
	"github.com/spf13/cobra"
)

// historyView is a queue's history as mqctl shows it; its JSON field
// names are stable, for scripts. Minutes start by the Redis server's
// clock, in UTC, oldest first, one a minute.
type historyView struct {
	Queue   string              `json:"queue"`
	Minutes []historyMinuteView `json:"minutes"`
}

type historyMinuteView struct {
	Start time.Time `json:"start"`
	// Processed counts the handlings recorded (succeeded, retried,
	// failed, dead); Failed those of them not succeeded; Dead the dead
	// letters written (dead and quarantined).
	Processed int64 `json:"processed"`
	Failed    int64 `json:"failed"`
	Dead      int64 `json:"dead"`
}

// sparkWidth is the most characters a sparkline takes: longer histories
// put several minutes in one character.
const sparkWidth = 60

// historyCommand shows a queue's history per minute.
func (a *app) historyCommand() *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "history QUEUE",
		Short: "Show the queue's processed, failed and dead-lettered handlings per minute, from Redis",
		Long: `Show what the workers of QUEUE did per minute, as they recorded it in Redis
(the library's Inspector.History): handlings processed (succeeded, retried,
failed or dead), those of them that failed (retried, failed or dead), and
dead letters written (dead or quarantined), over the last --since (up to a
day, which is what Redis keeps), by the Redis server's clock, UTC.

It prints the totals with a sparkline of each count (one character a
minute, or a few minutes a character past 60 minutes), then one row per
minute that saw any. Carmine's workers' handlings are not counted.`,
		Args: args(1, 1, "QUEUE"),
		RunE: a.action(func(ctx context.Context, c *mq.Client, args []string) error {
			if since <= 0 || since > mq.HistoryWindow {
				return usageErrorf("--since must be more than 0 and at most %v", mq.HistoryWindow)
			}
			queue := args[0]
			// The server's clock decides the minutes.
			h, err := c.Inspector().RecentHistory(ctx, queue, since)
			if err != nil {
				return err
			}
			v := historyView{Queue: queue, Minutes: make([]historyMinuteView, 0, len(h))}
			for _, m := range h {
				v.Minutes = append(v.Minutes, historyMinuteView{Start: m.Start.UTC(), Processed: m.Processed,
					Failed: m.Failed, Dead: m.Dead})
			}
			if a.json {
				return printJSON(a.stdout, v)
			}
			return printHistory(a.stdout, v)
		}),
	}
	cmd.Flags().DurationVar(&since, "since", time.Hour, "how far back to show, up to 24h")
	return cmd
}

// printHistory writes a history for people.
func printHistory(w io.Writer, v historyView) error {
	if len(v.Minutes) == 0 {
		return nil
	}
	fmt.Fprintf(w, "history of %s, %d minutes from %s (UTC)\n\n", safeText(v.Queue), len(v.Minutes),
		timeText(v.Minutes[0].Start))
	counts := func(f func(historyMinuteView) int64) []int64 {
		out := make([]int64, len(v.Minutes))
		for i, m := range v.Minutes {
			out[i] = f(m)
		}
		return out
	}
	t := newTable(w)
	row(t, "", "TOTAL", "PER MINUTE")
	var active []historyMinuteView
	for _, m := range v.Minutes {
		if m.Processed+m.Failed+m.Dead > 0 {
			active = append(active, m)
		}
	}
	for _, k := range []struct {
		name string
		f    func(historyMinuteView) int64
	}{
		{"processed", func(m historyMinuteView) int64 { return m.Processed }},
		{"failed", func(m historyMinuteView) int64 { return m.Failed }},
		{"dead", func(m historyMinuteView) int64 { return m.Dead }},
	} {
		c := counts(k.f)
		var total int64
		for _, n := range c {
			total += n
		}
		row(t, k.name, itoa(total), sparkline(c, sparkWidth))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(active) == 0 {
		fmt.Fprintln(w, "\nno handlings recorded in these minutes")
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "MINUTE", "PROCESSED", "FAILED", "DEAD")
	for _, m := range active {
		row(t, m.Start.Format("2006-01-02T15:04Z"), itoa(m.Processed), itoa(m.Failed), itoa(m.Dead))
	}
	return t.Flush()
}

// sparkBars are the heights of a sparkline, from none (a dot, so that
// the line shows its whole span) to the most.
var sparkBars = []rune("·▁▂▃▄▅▆▇█")

// sparkline draws counts in at most width characters, each the sum of
// as many counts in a row as it takes, scaled to the largest; a
// character of any count above 0 is never blank.
func sparkline(counts []int64, width int) string {
	per := max(1, (len(counts)+width-1)/width)
	var sums []int64
	for i := 0; i < len(counts); i += per {
		var s int64
		for _, n := range counts[i:min(i+per, len(counts))] {
			s += n
		}
		sums = append(sums, s)
	}
	var top int64
	for _, s := range sums {
		top = max(top, s)
	}
	levels := int64(len(sparkBars) - 1)
	var b strings.Builder
	for _, s := range sums {
		level := int64(0)
		if s > 0 {
			level = (s*levels + top - 1) / top // from 1, the largest at levels
		}
		b.WriteRune(sparkBars[level])
	}
	return b.String()
}

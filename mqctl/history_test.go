package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gocarmine/mq"
)

// TestHistory: history shows the handlings the workers recorded in Redis,
// with totals, sparklines and a row per minute that saw any.
func TestHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.env.ok(t, "", "history", "jobs")
	if !strings.Contains(r.stdout, "60 minutes") || !strings.Contains(r.stdout, "no handlings recorded") {
		t.Errorf("an empty history:\n%s", r.stdout)
	}
	f.bury(t, "jobs", 10, func(m *mq.Message) error {
		if m.ID == "bad" {
			return final("no")
		}
		return nil
	}, req("a", 1), req("b", 2), req("bad", 3))

	var v historyView
	decode(t, f.env.ok(t, "", "history", "jobs", "--json", "--since", "24h"), &v)
	if v.Queue != "jobs" || len(v.Minutes) != 1440 {
		t.Fatalf("--json: queue %q, %d minutes", v.Queue, len(v.Minutes))
	}
	var sum historyMinuteView
	for _, m := range v.Minutes {
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	if sum != (historyMinuteView{Processed: 3, Failed: 1, Dead: 1}) {
		t.Errorf("--json sums %+v", sum)
	}
	r = f.env.ok(t, "", "history", "jobs", "--since", "5m")
	for _, want := range []string{"5 minutes", "processed  3", "failed     1", "dead       1", "MINUTE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in:\n%s", want, r.stdout)
		}
	}
	for _, bad := range []string{"0s", "25h"} {
		f.env.fails(t, exitUsage, "--since must be", "", "history", "jobs", "--since", bad)
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		counts []int64
		width  int
		want   string
	}{
		{[]int64{0, 1, 2, 4, 8}, 60, "·▁▂▄█"},
		{[]int64{0, 0, 0}, 60, "···"},
		{[]int64{1, 100}, 60, "▁█"},
		{[]int64{1, 1, 0, 0, 2, 2}, 3, "▄·█"},
	} {
		if got := sparkline(c.counts, c.width); got != c.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", c.counts, c.width, got, c.want)
		}
	}
}

// TestDeadShowAttemptErrors: dead show lists the error of each failed
// attempt, not only the last.
func TestDeadShowAttemptErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.bury(t, "jobs", 3, func(m *mq.Message) error { return fmt.Errorf("try %d", m.Attempt) }, req("m", 1))
	r := f.env.ok(t, "", "dead", "show", "jobs", "m")
	for _, want := range []string{"attempts        3", "attempt 1", "  try 1\n", "attempt 2", "  try 2\n", "attempt 3", "  try 3\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("no %q in:\n%s", want, r.stdout)
		}
	}
	var v deadView
	decode(t, f.env.ok(t, "", "dead", "show", "jobs", "m", "--json"), &v)
	if len(v.AttemptErrors) != 3 || v.AttemptErrors[1].Attempt != 2 || v.AttemptErrors[1].Error != "try 2" || v.AttemptErrors[1].At.IsZero() {
		t.Errorf("--json attempt errors: %+v", v.AttemptErrors)
	}
}

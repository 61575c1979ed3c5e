package mqprom

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScheduleCollector exports each schedule's next tick and paused
// state, as Inspector.Schedules reads them, and counts a queue it cannot
// read.
func TestScheduleCollector(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	ctx := context.Background()
	in := c.Inspector()
	_, err := in.SetSchedule(ctx, "jobs", mq.Schedule{Name: "hourly", Every: time.Hour, Message: "x"})
	require.NoError(t, err)
	_, err = in.SetSchedule(ctx, "jobs", mq.Schedule{Name: "nightly", Cron: "0 3 * * *", Message: "y", Paused: true})
	require.NoError(t, err)
	list, err := in.Schedules(ctx, "jobs")
	require.NoError(t, err)
	require.Len(t, list, 2)

	rec := &recorder{}
	col := NewScheduleCollector(c, ScheduleOptions{Queues: []string{"jobs", "bad*name"}, Logger: slog.New(rec)})
	got := only(gather(t, col), "mq_schedule_")
	assert.Equal(t, map[string]float64{
		`mq_schedule_next_tick_timestamp_seconds{queue="jobs",schedule="hourly"}`: float64(list[0].Next.UnixMilli()) / 1000,
		`mq_schedule_paused{queue="jobs",schedule="hourly"}`:                      0,
		`mq_schedule_paused{queue="jobs",schedule="nightly"}`:                     1,
		`mq_schedule_scrape_errors_total`:                                         1,
	}, got)
	assert.Len(t, rec.errors(), 1)

	// With no queue named, every queue with schedules.
	all := only(gather(t, NewScheduleCollector(c, ScheduleOptions{})), "mq_schedule_paused")
	assert.Equal(t, map[string]float64{
		`mq_schedule_paused{queue="jobs",schedule="hourly"}`:  0,
		`mq_schedule_paused{queue="jobs",schedule="nightly"}`: 1,
	}, all)

	problems, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, problems, "metric names and help pass promlint")
}

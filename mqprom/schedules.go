package mqprom

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq"
	"github.com/prometheus/client_golang/prometheus"
)

// ScheduleOptions configure a [ScheduleCollector].
type ScheduleOptions struct {
	// Queues names the queues whose schedules are exported. Default
	// (nil): every queue Inspector.QueueNames finds at each scrape (which
	// lists the queues with schedules), a SCAN of Redis's whole keyspace.
	Queues []string

	// Timeout bounds the Redis reads of one scrape. Default:
	// DefaultTimeout.
	Timeout time.Duration

	// Logger receives a warning for each scrape that failed to read a
	// queue's schedules. Default: slog.Default().
	Logger *slog.Logger
}

// ScheduleCollector is a prometheus.Collector of the periodic schedules
// of some queues (mq.Inspector.Schedules), read from Redis on each scrape,
// one round trip per queue:
//
//	mq_schedule_next_tick_timestamp_seconds{queue,schedule}  gauge  when its next tick is due (the Redis server's clock); absent while paused
//	mq_schedule_paused{queue,schedule}                       gauge  1 while the schedule is paused
//	mq_schedule_scrape_errors_total                          counter  failed reads: the listing of the queues, or a queue's schedules
//
// A next tick in the past by more than a few seconds means that no
// scheduler runs for its queue (no worker of it, or all with
// NoScheduler): alert on time() - mq_schedule_next_tick_timestamp_seconds.
type ScheduleCollector struct {
	client *mq.Client
	opts   ScheduleOptions

	next, paused, errorsDesc *prometheus.Desc
	errors                   atomic.Int64
}

// NewScheduleCollector returns a collector of the schedules of the queues
// opts names (or of every queue), on client.
func NewScheduleCollector(client *mq.Client, opts ScheduleOptions) *ScheduleCollector {
	c := &ScheduleCollector{client: client, opts: opts}
	if c.opts.Queues != nil {
		q := slices.Clone(c.opts.Queues)
		slices.Sort(q)
		c.opts.Queues = slices.Compact(q)
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = DefaultTimeout
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
	c.next = prometheus.NewDesc("mq_schedule_next_tick_timestamp_seconds",
		"When the schedule's next tick is due, in Unix seconds by the Redis server's clock (mq.ScheduleInfo.Next); absent while the schedule is paused.",
		[]string{"queue", "schedule"}, nil)
	c.paused = prometheus.NewDesc("mq_schedule_paused",
		"1 while the schedule is paused (mq.Inspector.PauseSchedule), else 0.",
		[]string{"queue", "schedule"}, nil)
	c.errorsDesc = prometheus.NewDesc("mq_schedule_scrape_errors_total",
		"Failed reads by scrapes of the schedule collector: of the listing of the queues, or of a queue's schedules.",
		nil, nil)
	return c
}

// Describe sends the descriptions of the collector's metrics.
func (c *ScheduleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.next
	ch <- c.paused
	ch <- c.errorsDesc
}

// Collect reads the queues' schedules and sends them. A failed read is
// counted and logged, and that queue's series are left out of the scrape.
func (c *ScheduleCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	queues := c.opts.Queues
	if queues == nil {
		names, err := c.client.Inspector().QueueNames(ctx, "*")
		if err != nil {
			c.errors.Add(1)
			c.opts.Logger.Warn("mqprom: listing the queues failed", slog.Any("error", err))
		}
		queues = names
	}
	for _, q := range queues {
		list, err := c.client.Inspector().Schedules(ctx, q)
		if err != nil {
			c.errors.Add(1)
			c.opts.Logger.Warn("mqprom: reading schedules failed", slog.String("queue", q), slog.Any("error", err))
			continue
		}
		for _, s := range list {
			if !s.Next.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.next, prometheus.GaugeValue, float64(s.Next.UnixMilli())/1000, q, s.Name)
			}
			ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, bool01(s.Paused), q, s.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, float64(c.errors.Load()))
}

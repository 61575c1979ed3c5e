package mqotel

import (
	"context"

	"github.com/gocarmine/mq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// TicksName counts the schedule ticks taken by the schedulers of the
// workers a MetricsObserver observes (or of a mq.Scheduler whose
// SchedulerConfig.OnTick is its ObserveTick), by queue, schedule
// (ScheduleKey) and whether the tick was skipped (SkippedKey): missed by
// more than the catch-up bound. Each tick is taken by one scheduler, so
// the sum over every process counts each tick once.
const TicksName = "carmine_mq.schedule.ticks"

// Attributes of TicksName.
const (
	// ScheduleKey is the schedule's name (mq.Schedule.Name).
	ScheduleKey = attribute.Key("messaging.carmine_mq.schedule")
	// SkippedKey tells whether a tick was skipped rather than enqueued.
	SkippedKey = attribute.Key("messaging.carmine_mq.schedule.skipped")
)

var _ mq.TickObserver = (*MetricsObserver)(nil)

func newTicksCounter(m metric.Meter) (metric.Int64Counter, error) {
	return m.Int64Counter(TicksName, metric.WithUnit("{tick}"),
		metric.WithDescription("Schedule ticks taken by this process's schedulers: enqueued, or skipped when missed by more than the catch-up bound."))
}

// ObserveTick counts t in TicksName.
func (o *MetricsObserver) ObserveTick(t mq.Tick) {
	o.ticks.Add(context.Background(), 1, metric.WithAttributes(
		append(baseAttrs(t.Queue), ScheduleKey.String(t.Schedule), SkippedKey.Bool(t.Skipped))...))
}

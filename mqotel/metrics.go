package mqotel

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocarmine/mq"
	"go.opentelemetry.io/otel/metric"
)

// Metric names. Durations are in seconds.
const (
	// HandlingDurationName is a histogram of how long handlers took, by
	// queue and outcome.
	HandlingDurationName = "carmine_mq.handling.duration"
	// QueueingDurationName is a histogram of the time from when a message
	// was due (its first enqueue, or the end of its delay, whichever is
	// later: mq.Handling.QueueingTime) to its first handling, by the Redis
	// server's clock, by queue (first attempts only).
	QueueingDurationName = "carmine_mq.queueing.duration"
	// HandledName counts handlings by queue and outcome.
	HandledName = "carmine_mq.handled"
	// QueueMessagesName is an observable gauge of a queue's messages by
	// state (StateKey), dead letters included, read from Redis.
	QueueMessagesName = "carmine_mq.queue.messages"
	// QueuePausedName is an observable gauge, 1 while a queue is paused
	// (mq.Inspector.PauseQueue) and 0 otherwise.
	QueuePausedName = "carmine_mq.queue.paused"
	// QueueResultsName is an observable gauge of the results a queue
	// keeps (mq.Message.SetResult, mq.QueueCounts.Results).
	QueueResultsName = "carmine_mq.queue.results"
	// QueueReadyByPriorityName is an observable gauge of a queue's ready
	// messages with a priority, by priority (PriorityKey: high or low;
	// the other ready messages are normal): mq.QueueCounts.ReadyHigh and
	// ReadyLow, upper bounds (see there).
	QueueReadyByPriorityName = "carmine_mq.queue.ready_by_priority"
	// QueueLimitSlotsName is an observable gauge of the concurrency
	// slots a queue's handlings hold (mq.Inspector.SetLimits,
	// mq.QueueCounts.LimitSlotsHeld); QueueLimitParkedName of the
	// messages parked for want of a slot of their limit key.
	QueueLimitSlotsName  = "carmine_mq.queue.limit.slots_held"
	QueueLimitParkedName = "carmine_mq.queue.limit.parked"
	// QueueHandoffsName is an observable gauge of the hand-off records
	// (follow-ups, batch ticks and completions) waiting for a relay
	// (mq.QueueCounts.HandoffsPending).
	QueueHandoffsName = "carmine_mq.queue.handoffs_pending"
)

// MetricsObserver is an mq.Observer that records every handling it is
// told of in the metrics HandlingDurationName, QueueingDurationName and
// HandledName, and, as an mq.TickObserver, every schedule tick the
// worker's scheduler takes in TicksName; set it as
// mq.WorkerConfig.Observer of any number of workers. It is safe for
// concurrent use.
type MetricsObserver struct {
	handling, queueing metric.Float64Histogram
	handled            metric.Int64Counter
	ticks              metric.Int64Counter // schedules.go
}

var _ mq.Observer = (*MetricsObserver)(nil)

// NewMetricsObserver makes the instruments of a MetricsObserver on the
// meter of the MeterProvider (option WithMeterProvider; default the
// global one).
func NewMetricsObserver(opts ...Option) (*MetricsObserver, error) {
	c := newConfig(opts)
	m := c.meter()
	handling, err1 := m.Float64Histogram(HandlingDurationName, metric.WithUnit("s"),
		metric.WithDescription("How long handlers took, by the outcome their answer asked for."),
		metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
	queueing, err2 := m.Float64Histogram(QueueingDurationName, metric.WithUnit("s"),
		metric.WithDescription("Time from when a message was due (its first enqueue, or the end of its delay, whichever is later) to its first handling, by the Redis server's clock."),
		metric.WithExplicitBucketBoundaries(.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 4*3600, 24*3600))
	handled, err3 := m.Int64Counter(HandledName, metric.WithUnit("{handling}"),
		metric.WithDescription("Handlings, by the outcome their answer asked for."))
	ticks, err4 := newTicksCounter(m)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, fmt.Errorf("mqotel: metrics: %w", err)
	}
	return &MetricsObserver{handling: handling, queueing: queueing, handled: handled, ticks: ticks}, nil
}

// ObserveHandling records h: its handling time and a count, by queue and
// outcome, and on its first attempt its queueing time.
func (o *MetricsObserver) ObserveHandling(h mq.Handling) {
	ctx := context.Background()
	byQueue := metric.WithAttributes(baseAttrs(h.Queue)...)
	byOutcome := metric.WithAttributes(append(baseAttrs(h.Queue), OutcomeKey.String(string(h.Outcome)))...)
	o.handling.Record(ctx, h.HandlingTime.Seconds(), byOutcome)
	o.handled.Add(ctx, 1, byOutcome)
	if h.Attempt == 1 {
		o.queueing.Record(ctx, h.QueueingTime.Seconds(), byQueue)
	}
}

// RegisterQueueGauges registers, on the meter of the MeterProvider (option
// WithMeterProvider; default the global one), a callback that reports
// the counts of the given queues as QueueMessagesName (by StateKey:
// queued, locked, backoff, done and dead), QueuePausedName and
// QueueResultsName. With no
// queue named it reports every queue client.QueueNames finds at each
// collection. The counts are read from Redis with client.QueueCounts,
// one round trip per queue and collection, so one collection covers the
// workers of every process. A queue whose counts cannot be read is left
// out of that collection, and the callback's error (joining every
// failure) goes to the SDK's error handler.
//
// Unregister the answer to stop.
func RegisterQueueGauges(client *mq.Client, queues []string, opts ...Option) (metric.Registration, error) {
	c := newConfig(opts)
	m := c.meter()
	messages, err1 := m.Int64ObservableGauge(QueueMessagesName, metric.WithUnit("{message}"),
		metric.WithDescription("Messages of the queue by state, read from Redis; dead letters are not in the other states."))
	paused, err2 := m.Int64ObservableGauge(QueuePausedName, metric.WithUnit("1"),
		metric.WithDescription("1 while the queue is paused for every worker of this library, 0 otherwise."))
	results, err3 := m.Int64ObservableGauge(QueueResultsName, metric.WithUnit("{result}"),
		metric.WithDescription("Results the queue keeps: what handlers gave with their successes, bounded by the workers' ResultMaxCount and ResultMaxAge."))
	byPriority, err4 := m.Int64ObservableGauge(QueueReadyByPriorityName, metric.WithUnit("{message}"),
		metric.WithDescription("Ready messages of the queue with a priority, by priority (high or low), read from Redis; an upper bound."))
	slots, err5 := m.Int64ObservableGauge(QueueLimitSlotsName, metric.WithUnit("{slot}"),
		metric.WithDescription("Concurrency slots held by the queue's handlings, for its concurrency limits; 0 without."))
	parked, err6 := m.Int64ObservableGauge(QueueLimitParkedName, metric.WithUnit("{message}"),
		metric.WithDescription("Messages of the queue parked for want of a concurrency slot of their limit key."))
	handoffs, err7 := m.Int64ObservableGauge(QueueHandoffsName, metric.WithUnit("{record}"),
		metric.WithDescription("Hand-off records of the queue waiting for a relay; growing means no worker of the queue relays."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		return nil, fmt.Errorf("mqotel: queue gauges: %w", err)
	}
	queues = append([]string(nil), queues...)
	reg, err := m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		names := queues
		if len(names) == 0 {
			var err error
			if names, err = client.Inspector().QueueNames(ctx, "*"); err != nil {
				return fmt.Errorf("mqotel: queue names: %w", err)
			}
		}
		var errs []error
		for _, q := range names {
			qc, err := client.Inspector().QueueCounts(ctx, q)
			if err != nil {
				errs = append(errs, fmt.Errorf("mqotel: counts of queue %q: %w", q, err))
				continue
			}
			base := baseAttrs(q)
			for _, s := range []struct {
				state string
				n     int64
			}{{"queued", qc.Queued}, {"locked", qc.Locked}, {"backoff", qc.Backoff}, {"done", qc.Done}, {"dead", qc.Dead}} {
				o.ObserveInt64(messages, s.n, metric.WithAttributes(append(base, StateKey.String(s.state))...))
			}
			var p int64
			if qc.Paused {
				p = 1
			}
			o.ObserveInt64(paused, p, metric.WithAttributes(base...))
			o.ObserveInt64(results, qc.Results, metric.WithAttributes(base...))
			o.ObserveInt64(byPriority, qc.ReadyHigh, metric.WithAttributes(append(base, PriorityKey.String("high"))...))
			o.ObserveInt64(byPriority, qc.ReadyLow, metric.WithAttributes(append(base, PriorityKey.String("low"))...))
			o.ObserveInt64(slots, qc.LimitSlotsHeld, metric.WithAttributes(base...))
			o.ObserveInt64(parked, qc.LimitParked, metric.WithAttributes(base...))
			o.ObserveInt64(handoffs, qc.HandoffsPending, metric.WithAttributes(base...))
		}
		return errors.Join(errs...)
	}, messages, paused, results, byPriority, slots, parked, handoffs)
	if err != nil {
		return nil, fmt.Errorf("mqotel: queue gauges: %w", err)
	}
	return reg, nil
}

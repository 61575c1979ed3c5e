package mqprom

import (
	"sync"

	"github.com/gocarmine/mq"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultHandlingBuckets are the default upper bounds, in seconds, of
// mq_worker_handling_seconds' buckets: from half a millisecond to five
// minutes. Each call answers a new slice.
func DefaultHandlingBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
}

// DefaultQueueingBuckets are the default upper bounds, in seconds, of
// mq_worker_queueing_seconds' buckets: from a millisecond to a day. Each
// call answers a new slice.
func DefaultQueueingBuckets() []float64 {
	return []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}
}

// WorkerOptions configure a [WorkerCollector]. The zero value (or nil) is
// valid.
type WorkerOptions struct {
	// HandlingBuckets are the upper bounds of mq_worker_handling_seconds'
	// buckets. Default: DefaultHandlingBuckets().
	HandlingBuckets []float64
	// QueueingBuckets are the upper bounds of mq_worker_queueing_seconds'
	// buckets. Default: DefaultQueueingBuckets().
	QueueingBuckets []float64
}

// WorkerCollector is a prometheus.Collector of the workers of this process
// (see the package doc for its metrics): counters read from the Stats of
// each worker given to Add, summed by queue, and histograms of handling and
// queueing time fed by its ObserveHandling, which makes it an mq.Observer
// to set as WorkerConfig.Observer. It is safe for concurrent use.
type WorkerCollector struct {
	handling *prometheus.HistogramVec
	queueing *prometheus.HistogramVec

	handled, released, backoffs, renewed, pollErrors, burstPolls, sleeps, skips, running *prometheus.Desc

	mu      sync.Mutex
	workers map[*mq.Worker]bool
	retired map[string]*mq.Counts // by queue: the last counts of workers removed
}

var _ mq.Observer = (*WorkerCollector)(nil)

// NewWorkerCollector returns a collector with no workers yet. opts may be
// nil for defaults.
func NewWorkerCollector(opts *WorkerOptions) *WorkerCollector {
	var o WorkerOptions
	if opts != nil {
		o = *opts
	}
	if o.HandlingBuckets == nil {
		o.HandlingBuckets = DefaultHandlingBuckets()
	}
	if o.QueueingBuckets == nil {
		o.QueueingBuckets = DefaultQueueingBuckets()
	}
	counter := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"queue"}, labels...), nil)
	}
	return &WorkerCollector{
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mq_worker_handling_seconds",
			Help:    "How long handlers took, by the outcome their answer asked for: success, retry, error (failed, to be retried), dead (failed for good: a dead letter) or abandoned.",
			Buckets: o.HandlingBuckets,
		}, []string{"queue", "outcome"}),
		queueing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mq_worker_queueing_seconds",
			Help:    "Time from when a message was due (its first enqueue, or the end of its delay, whichever is later) to its first handling, by the Redis server's clock (first attempts only).",
			Buckets: o.QueueingBuckets,
		}, []string{"queue"}),
		handled: counter("mq_worker_handled_total",
			"Handlings by recorded outcome: success, retry, error (failed, retried by the policy), dead (failed for good: a dead letter), lock_lost (fenced off by a lost lock) or abandoned (left locked).", "outcome"),
		released:   counter("mq_worker_released_total", "Prefetched messages given back unhandled."),
		backoffs:   counter("mq_worker_backoffs_set_total", "Outcomes that set a backoff (a Retry with a delay, or SucceedWithBackoff)."),
		renewed:    counter("mq_worker_locks_renewed_total", "Lock renewals while handlers ran (on unless WorkerConfig.NoLockRenewal)."),
		pollErrors: counter("mq_worker_poll_errors_total", "Polls that failed."),
		burstPolls: counter("mq_worker_burst_polls_total", "Polls of the second poll in flight kept while the queue is busy."),
		sleeps:     counter("mq_worker_end_of_queue_sleeps_total", "Sleeps at the end of the queue."),
		skips:      counter("mq_worker_poll_skips_total", "Poll steps that handed nothing out, by reason.", "reason"),
		running: prometheus.NewDesc("mq_worker_running",
			"Workers of the queue added to the collector that are running.", []string{"queue"}, nil),
		workers: map[*mq.Worker]bool{},
		retired: map[string]*mq.Counts{},
	}
}

// ObserveHandling records a handling in the histograms: its handling time
// always, its queueing time on its first attempt. It is the mq.Observer
// method; set the collector as WorkerConfig.Observer.
func (c *WorkerCollector) ObserveHandling(h mq.Handling) {
	c.handling.WithLabelValues(h.Queue, string(h.Outcome)).Observe(h.HandlingTime.Seconds())
	if h.Attempt == 1 {
		c.queueing.WithLabelValues(h.Queue).Observe(h.QueueingTime.Seconds())
	}
}

// Add exports w's counters (Worker.Stats), from the next scrape on, summed
// with those of the other workers of its queue. Adding a worker twice
// does nothing.
func (c *WorkerCollector) Add(w *mq.Worker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.workers[w] = true
}

// Remove stops reading w's Stats. Its counts as of now stay in its queue's
// counters, so that they never go down; what it counts afterwards is not
// exported. Removing a worker not added does nothing.
func (c *WorkerCollector) Remove(w *mq.Worker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.workers[w] {
		return
	}
	delete(c.workers, w)
	r := c.retired[w.Queue()]
	if r == nil {
		r = &mq.Counts{}
		c.retired[w.Queue()] = r
	}
	addCounts(r, w.Stats().Counts)
}

// Describe sends the descriptions of the collector's metrics.
func (c *WorkerCollector) Describe(ch chan<- *prometheus.Desc) {
	c.handling.Describe(ch)
	c.queueing.Describe(ch)
	for _, d := range []*prometheus.Desc{c.handled, c.released, c.backoffs, c.renewed, c.pollErrors, c.burstPolls, c.sleeps, c.skips, c.running} {
		ch <- d
	}
}

// Collect sends the histograms and, by queue, the sum of the counters of
// the workers added (and of those removed, as of their removal).
func (c *WorkerCollector) Collect(ch chan<- prometheus.Metric) {
	c.handling.Collect(ch)
	c.queueing.Collect(ch)

	c.mu.Lock()
	sums := make(map[string]*mq.Counts, len(c.retired)+len(c.workers))
	running := map[string]int{}
	for q, r := range c.retired {
		n := *r
		sums[q] = &n
	}
	workers := make([]*mq.Worker, 0, len(c.workers))
	for w := range c.workers {
		workers = append(workers, w)
	}
	c.mu.Unlock()
	for _, w := range workers {
		info := w.Info()
		q := w.Queue()
		if sums[q] == nil {
			sums[q] = &mq.Counts{}
		}
		addCounts(sums[q], info.Stats.Counts)
		if info.Running {
			running[q]++
		}
	}

	for q, n := range sums {
		count := func(d *prometheus.Desc, v int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{q}, labels...)...)
		}
		for _, o := range []mq.Outcome{mq.OutcomeSucceeded, mq.OutcomeRetried, mq.OutcomeFailed,
			mq.OutcomeDead, mq.OutcomeLockLost, mq.OutcomeAbandoned, mq.OutcomeCancelled} {
			count(c.handled, n.Of(o), string(o))
		}
		count(c.released, n.Released)
		count(c.backoffs, n.BackoffsSet)
		count(c.renewed, n.LocksRenewed)
		count(c.pollErrors, n.PollErrors)
		count(c.burstPolls, n.BurstPolls)
		count(c.sleeps, n.EndOfQueueSleeps)
		s := n.Skips
		for _, r := range []struct {
			reason string
			n      int64
		}{
			{"did_trim", s.DidTrim}, {"unexpected", s.Unexpected}, {"locked", s.Locked},
			{"queued_with_backoff", s.QueuedWithBackoff}, {"done_with_backoff", s.DoneWithBackoff},
			{"did_requeue", s.DidRequeue}, {"did_gc", s.DidGC}, {"quarantined", s.Quarantined}, {"indexed", s.Indexed},
			{"suspect", s.Suspect}, {"rate_limited", s.RateLimited}, {"limited", s.Limited}, {"parked", s.Parked},
			{"other", s.Other}, {"cancelled", s.Cancelled},
		} {
			count(c.skips, r.n, r.reason)
		}
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running[q]), q)
	}
}

// addCounts adds b's counters to a's. A counter mq.Counts gains must be
// added here and exported in Collect.
func addCounts(a *mq.Counts, b mq.Counts) {
	a.Succeeded += b.Succeeded
	a.Retried += b.Retried
	a.Failed += b.Failed
	a.Dead += b.Dead
	a.BackoffsSet += b.BackoffsSet
	a.LockLost += b.LockLost
	a.Abandoned += b.Abandoned
	a.Released += b.Released
	a.BurstPolls += b.BurstPolls
	a.LocksRenewed += b.LocksRenewed
	a.EndOfQueueSleeps += b.EndOfQueueSleeps
	a.PollErrors += b.PollErrors
	a.Cancelled += b.Cancelled
	s, t := &a.Skips, b.Skips
	s.DidTrim += t.DidTrim
	s.Unexpected += t.Unexpected
	s.Locked += t.Locked
	s.QueuedWithBackoff += t.QueuedWithBackoff
	s.DoneWithBackoff += t.DoneWithBackoff
	s.DidRequeue += t.DidRequeue
	s.DidGC += t.DidGC
	s.Quarantined += t.Quarantined
	s.Indexed += t.Indexed
	s.Suspect += t.Suspect
	s.RateLimited += t.RateLimited
	s.Limited += t.Limited
	s.Parked += t.Parked
	s.Other += t.Other
	s.Cancelled += t.Cancelled
}

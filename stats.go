package mq

import (
	"sync/atomic"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/stats"
)

// The counters of WorkerStats.Counts.
const (
	// CountSuccess counts handlings that answered success.
	CountSuccess = "handler/success"
	// CountRetry counts handlings that asked for a retry.
	CountRetry = "handler/retry"
	// CountError counts handlings that failed (an error or a panic).
	CountError = "handler/error"
	// CountBackoff counts outcomes that set a backoff.
	CountBackoff = "handler/backoff"
	// CountLockLost counts handlings whose outcome was not recorded
	// because their lock was lost (fenced completion).
	CountLockLost = "handler/lock-lost"
	// CountAbandoned counts handlings left locked by a stop: cancelled and
	// failed, or not recorded before the stop's deadline.
	CountAbandoned = "handler/abandoned"
	// CountReleased counts prefetched messages given back unhandled, at a
	// stop or after waiting too long (see WorkerConfig.Prefetch).
	CountReleased = "prefetch/released"
	// CountBurstPolls counts the polls of the second poll in flight that a
	// prefetching worker keeps while the queue is busy (see
	// WorkerConfig.Prefetch).
	CountBurstPolls = "prefetch/burst-polls"
	// CountRenewed counts lock renewals.
	CountRenewed = "handler/lock-renewed"
	// CountEndOfCircle counts end-of-queue sleeps.
	CountEndOfCircle = "sleep/end-of-circle"
	// CountPollError counts polls that failed (Redis down, for one).
	CountPollError = "worker/poll-error"
)

var countNames = []string{CountSuccess, CountRetry, CountError, CountBackoff, CountLockLost,
	CountAbandoned, CountReleased, CountBurstPolls, CountRenewed, CountEndOfCircle, CountPollError}

// Summary holds summary statistics over a worker's recent samples (the
// latest 1,000): last, min, max, mean, mean absolute deviation, variance,
// and nearest-rank percentiles. Count is the number of samples ever taken.
type Summary struct {
	Last, Min, Max, Mean, MAD, Variance float64
	P50, P90, P99                       float64
	Count                               int64
}

// WorkerStats are a worker's statistics (SPEC section 7).
type WorkerStats struct {
	// QueueSize is sampled after every poll.
	QueueSize Summary
	// QueueingTimeMS is the time from first enqueue to first handling, in
	// milliseconds, by the Redis server's clock.
	QueueingTimeMS Summary
	// HandlingTimeMS is the time the handler took, in milliseconds.
	HandlingTimeMS Summary
	// Counts holds the counters named by the Count constants, and
	// "skip/<reason>" for each skip answer of a poll.
	Counts map[string]int64
}

const statsWindow = 1000

type workerStats struct {
	queueSize, queueingTime, handlingTime *stats.Window
	counts                                map[string]*atomic.Int64 // fixed keys, never written after creation
}

func newWorkerStats() *workerStats {
	s := &workerStats{
		queueSize:    stats.NewWindow(statsWindow),
		queueingTime: stats.NewWindow(statsWindow),
		handlingTime: stats.NewWindow(statsWindow),
		counts:       map[string]*atomic.Int64{},
	}
	for _, n := range countNames {
		s.counts[n] = new(atomic.Int64)
	}
	for _, r := range protocol.SkipReasons { // the poll's skip answers
		s.counts["skip/"+r] = new(atomic.Int64)
	}
	s.counts["skip/other"] = new(atomic.Int64)
	return s
}

func (s *workerStats) count(name string) { s.counts[name].Add(1) }

func (s *workerStats) countSkip(reason string) {
	if c, ok := s.counts["skip/"+reason]; ok {
		c.Add(1)
		return
	}
	s.counts["skip/other"].Add(1)
}

func (s *workerStats) snapshot() WorkerStats {
	out := WorkerStats{
		QueueSize:      summary(s.queueSize),
		QueueingTimeMS: summary(s.queueingTime),
		HandlingTimeMS: summary(s.handlingTime),
		Counts:         make(map[string]int64, len(s.counts)),
	}
	for k, v := range s.counts {
		out.Counts[k] = v.Load()
	}
	return out
}

func (s *workerStats) reset() {
	s.queueSize.Reset()
	s.queueingTime.Reset()
	s.handlingTime.Reset()
	for _, v := range s.counts {
		v.Store(0)
	}
}

func summary(w *stats.Window) Summary {
	x := w.Summary()
	return Summary{Last: x.Last, Min: x.Min, Max: x.Max, Mean: x.Mean, MAD: x.MAD,
		Variance: x.Variance, P50: x.P50, P90: x.P90, P99: x.P99, Count: x.Count}
}

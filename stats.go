package mq

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/stats"
)

// WorkerStats is a snapshot of a worker's statistics. It marshals to JSON
// as it is, for a debug endpoint.
type WorkerStats struct {
	// QueueSize is the queue size, sampled after polls.
	QueueSize Summary `json:"queue_size"`
	// QueueingTime is the time from when a message was due (its first
	// enqueue, or the end of its delay, whichever is later) to its first
	// handling, by the Redis server's clock (to the millisecond): see
	// Handling.QueueingTime.
	QueueingTime DurationSummary `json:"queueing_time"`
	// HandlingTime is the time the handler took, by the local clock.
	HandlingTime DurationSummary `json:"handling_time"`
	// Counts are the worker's counters since it was made (or ResetStats).
	Counts Counts `json:"counts"`
}

// Counts are a worker's counters.
type Counts struct {
	// Succeeded counts handlings that answered success, with a backoff or
	// not.
	Succeeded int64 `json:"succeeded"`
	// Retried counts handlings that answered Retry.
	Retried int64 `json:"retried"`
	// Failed counts handlings that failed (an error or a panic) and were
	// queued again by the retry policy (WorkerConfig.MaxAttempts).
	Failed int64 `json:"failed"`
	// Dead counts handlings that failed for good: after their last
	// attempt, or with an error marked Final. Their messages are dead
	// letters now (Inspector.DeadLetters). Each handling counts exactly one
	// of Succeeded, Retried, Failed, Dead, Cancelled, LockLost and
	// Abandoned (see Of).
	Dead int64 `json:"dead"`
	// BackoffsSet counts outcomes that set a backoff (a Retry with a
	// delay, or SucceedWithBackoff).
	BackoffsSet int64 `json:"backoffs_set"`
	// LockLost counts outcomes not recorded because the message's lock was
	// lost meanwhile (fenced).
	LockLost int64 `json:"lock_lost"`
	// Abandoned counts handlings left with their message locked, to be
	// handled again once the lock expires: cancelled by a stop and failed,
	// cut short by a Stop's deadline or Close, or whose outcome could not
	// be recorded before the stop.
	Abandoned int64 `json:"abandoned"`
	// Released counts prefetched messages given back unhandled, at a stop
	// or after waiting too long (see WorkerConfig.Prefetch).
	Released int64 `json:"released"`
	// BurstPolls counts the polls of the second poll in flight that a
	// prefetching worker keeps while the queue is busy.
	BurstPolls int64 `json:"burst_polls"`
	// LocksRenewed counts lock renewals while handlers ran.
	LocksRenewed int64 `json:"locks_renewed"`
	// EndOfQueueSleeps counts sleeps at the end of the queue.
	EndOfQueueSleeps int64 `json:"end_of_queue_sleeps"`
	// PollErrors counts polls that failed (Redis down, for one).
	PollErrors int64 `json:"poll_errors"`
	// Skips counts the poll's steps that handed nothing out, by reason.
	Skips SkipCounts `json:"skips"`
	// Cancelled counts handlings whose outcome was recorded as
	// cancelled (Client.Cancel, or the handler answered ErrCancelled):
	// their messages are deleted, neither retried nor dead letters.
	Cancelled int64 `json:"cancelled"`
}

// Of answers the count of handlings whose outcome was o: Succeeded for
// OutcomeSucceeded, and so on; 0 for OutcomeQuarantined, which befalls a
// message no handling answered for (see Skips.Quarantined).
func (c Counts) Of(o Outcome) int64 {
	switch o {
	case OutcomeSucceeded:
		return c.Succeeded
	case OutcomeRetried:
		return c.Retried
	case OutcomeFailed:
		return c.Failed
	case OutcomeDead:
		return c.Dead
	case OutcomeLockLost:
		return c.LockLost
	case OutcomeAbandoned:
		return c.Abandoned
	case OutcomeCancelled:
		return c.Cancelled
	}
	return 0
}

// SkipCounts count the steps of a poll that handed no message out, by the
// reason the poll gave (docs/protocol.md §4).
type SkipCounts struct {
	DidTrim           int64 `json:"did_trim"`            // an id without a status, dropped from the circle
	Unexpected        int64 `json:"unexpected"`          // an id without a status, taken from the ready list
	Locked            int64 `json:"locked"`              // held by a live lock
	QueuedWithBackoff int64 `json:"queued_with_backoff"` // waiting for its backoff to end
	DoneWithBackoff   int64 `json:"done_with_backoff"`   // done, in its dedupe window
	DidRequeue        int64 `json:"did_requeue"`         // done, and enqueued again meanwhile
	DidGC             int64 `json:"did_gc"`              // done, and collected
	Quarantined       int64 `json:"quarantined"`         // handed out too often without an outcome: a dead letter now
	Indexed           int64 `json:"indexed"`             // on the circle, and due later: left to the due index
	Suspect           int64 `json:"suspect"`             // lost before with other messages: left for a worker holding nothing
	RateLimited       int64 `json:"rate_limited"`        // refused by a rate limit until its token comes due (§19)
	Limited           int64 `json:"limited"`             // refused for want of a slot of the queue's concurrency limit (§19)
	Parked            int64 `json:"parked"`              // refused for want of a slot of its key: parked (§19)
	Other             int64 `json:"other"`               // a reason this version does not know
	Cancelled         int64 `json:"cancelled"`           // cancelled, its handler gone: collected, never handed out again
}

// Summary holds summary statistics over a worker's recent samples (the
// latest 1,000): last, min, max, mean, mean absolute deviation, standard
// deviation, and nearest-rank percentiles. Count is the number of samples
// ever taken. All are 0 before the first sample.
type Summary struct {
	Last   float64 `json:"last"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	MAD    float64 `json:"mad"`
	StdDev float64 `json:"stddev"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Count  int64   `json:"count"`
}

// DurationSummary is a [Summary] of durations, at full resolution (in
// JSON, as nanoseconds).
type DurationSummary struct {
	Last   time.Duration `json:"last"`
	Min    time.Duration `json:"min"`
	Max    time.Duration `json:"max"`
	Mean   time.Duration `json:"mean"`
	MAD    time.Duration `json:"mad"`
	StdDev time.Duration `json:"stddev"`
	P50    time.Duration `json:"p50"`
	P90    time.Duration `json:"p90"`
	P99    time.Duration `json:"p99"`
	Count  int64         `json:"count"`
}

const statsWindow = 1000

// counter names one of a worker's counters, in workerStats.counts.
type counter int

const (
	cSucceeded counter = iota
	cRetried
	cFailed
	cDead
	cBackoffsSet
	cLockLost
	cAbandoned
	cReleased
	cBurstPolls
	cLocksRenewed
	cEndOfQueueSleeps
	cPollErrors
	cSkipDidTrim
	cSkipUnexpected
	cSkipLocked
	cSkipQueuedWithBackoff
	cSkipDoneWithBackoff
	cSkipDidRequeue
	cSkipDidGC
	cSkipQuarantined
	cSkipIndexed
	cSkipSuspect
	cSkipRateLimited
	cSkipLimited
	cSkipParked
	cSkipOther
	cCancelled
	cSkipCancelled
	numCounters
)

// skipCounters maps the poll's skip reasons to their counters.
var skipCounters = map[string]counter{
	"did-trim":            cSkipDidTrim,
	"unexpected":          cSkipUnexpected,
	"locked":              cSkipLocked,
	"queued-with-backoff": cSkipQueuedWithBackoff,
	"done-with-backoff":   cSkipDoneWithBackoff,
	"did-requeue":         cSkipDidRequeue,
	"did-gc":              cSkipDidGC,
	"quarantined":         cSkipQuarantined,
	"indexed":             cSkipIndexed,
	"suspect":             cSkipSuspect,
	"cancelled":           cSkipCancelled,
	"rate-limited":        cSkipRateLimited,
	"limited":             cSkipLimited,
	"parked":              cSkipParked,
}

// workerStats are a worker's live statistics; times are kept in ns.
type workerStats struct {
	queueSize, queueingTime, handlingTime *stats.Window
	counts                                [numCounters]atomic.Int64
}

func newWorkerStats() *workerStats {
	return &workerStats{
		queueSize:    stats.NewWindow(statsWindow),
		queueingTime: stats.NewWindow(statsWindow),
		handlingTime: stats.NewWindow(statsWindow),
	}
}

func (s *workerStats) count(c counter) { s.counts[c].Add(1) }

func (s *workerStats) add(c counter, n int64) { s.counts[c].Add(n) }

func (s *workerStats) countSkip(reason string) {
	c, ok := skipCounters[reason]
	if !ok {
		c = cSkipOther
	}
	s.counts[c].Add(1)
}

func (s *workerStats) snapshot() WorkerStats {
	n := func(c counter) int64 { return s.counts[c].Load() }
	return WorkerStats{
		QueueSize:    summary(s.queueSize),
		QueueingTime: durationSummary(s.queueingTime),
		HandlingTime: durationSummary(s.handlingTime),
		Counts: Counts{
			Succeeded:        n(cSucceeded),
			Retried:          n(cRetried),
			Failed:           n(cFailed),
			Dead:             n(cDead),
			BackoffsSet:      n(cBackoffsSet),
			LockLost:         n(cLockLost),
			Abandoned:        n(cAbandoned),
			Released:         n(cReleased),
			BurstPolls:       n(cBurstPolls),
			LocksRenewed:     n(cLocksRenewed),
			EndOfQueueSleeps: n(cEndOfQueueSleeps),
			PollErrors:       n(cPollErrors),
			Skips: SkipCounts{
				DidTrim:           n(cSkipDidTrim),
				Unexpected:        n(cSkipUnexpected),
				Locked:            n(cSkipLocked),
				QueuedWithBackoff: n(cSkipQueuedWithBackoff),
				DoneWithBackoff:   n(cSkipDoneWithBackoff),
				DidRequeue:        n(cSkipDidRequeue),
				DidGC:             n(cSkipDidGC),
				Quarantined:       n(cSkipQuarantined),
				Indexed:           n(cSkipIndexed),
				Suspect:           n(cSkipSuspect),
				RateLimited:       n(cSkipRateLimited),
				Limited:           n(cSkipLimited),
				Parked:            n(cSkipParked),
				Other:             n(cSkipOther),
				Cancelled:         n(cSkipCancelled),
			},
			Cancelled: n(cCancelled),
		},
	}
}

func (s *workerStats) reset() {
	s.queueSize.Reset()
	s.queueingTime.Reset()
	s.handlingTime.Reset()
	for i := range s.counts {
		s.counts[i].Store(0)
	}
}

func summary(w *stats.Window) Summary {
	x := w.Summary()
	return Summary{Last: x.Last, Min: x.Min, Max: x.Max, Mean: x.Mean, MAD: x.MAD,
		StdDev: math.Sqrt(x.Variance), P50: x.P50, P90: x.P90, P99: x.P99, Count: x.Count}
}

func durationSummary(w *stats.Window) DurationSummary {
	x := summary(w)
	d := func(ns float64) time.Duration { return time.Duration(math.Round(ns)) }
	return DurationSummary{Last: d(x.Last), Min: d(x.Min), Max: d(x.Max), Mean: d(x.Mean), MAD: d(x.MAD),
		StdDev: d(x.StdDev), P50: d(x.P50), P90: d(x.P90), P99: d(x.P99), Count: x.Count}
}

package mq

import (
	"log/slog"
	"math"
	"time"
)

// counters reads the worker's counters.
func (w *Worker) counters() (c [numCounters]int64) {
	for i := range c {
		c[i] = w.stats.counts[i].Load()
	}
	return c
}

// since answers the counters' growth from then to now. A counter that
// went down was reset (ResetStats) meanwhile: its growth is its value.
func since(then, now [numCounters]int64) (d [numCounters]int64) {
	for i := range d {
		d[i] = now[i] - then[i]
		if d[i] < 0 {
			d[i] = now[i]
		}
	}
	return d
}

// summarizer logs what a worker did since its last summary line.
type summarizer struct {
	w    *Worker
	last [numCounters]int64
	at   time.Time
}

// log writes one summary line of what happened since the last one, or
// nothing when no message was handled, given back or lost meanwhile.
func (s *summarizer) log() {
	now, at := s.w.counters(), time.Now()
	d, over := since(s.last, now), at.Sub(s.at)
	s.last, s.at = now, at
	handled := d[cSucceeded] + d[cRetried] + d[cFailed] + d[cDead] + d[cCancelled]
	if handled+d[cLockLost]+d[cAbandoned]+d[cReleased] == 0 {
		return
	}
	s.w.log.Info("mq: worker summary",
		slog.String("worker_id", s.w.id),
		slog.Duration("over", over.Round(time.Millisecond)),
		slog.Int64("handled", handled),
		slog.Float64("handled_per_second", perSecond(handled, over)),
		slog.Int64(string(OutcomeSucceeded), d[cSucceeded]),
		slog.Int64(string(OutcomeRetried), d[cRetried]),
		slog.Int64(string(OutcomeFailed), d[cFailed]),
		slog.Float64("failed_per_second", perSecond(d[cFailed], over)),
		slog.Int64(string(OutcomeDead), d[cDead]),
		slog.Int64(string(OutcomeLockLost), d[cLockLost]),
		slog.Int64(string(OutcomeAbandoned), d[cAbandoned]),
		slog.Int64(string(OutcomeCancelled), d[cCancelled]),
		slog.Int64("released", d[cReleased]),
		slog.Int64("poll_errors", d[cPollErrors]),
		slog.Int64("queue_size", int64(s.w.stats.queueSize.Summary().Last)),
	)
}

// perSecond is n over d, per second, to two decimals.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*100) / 100
}

// startAttrs are the attributes of a worker's start line: its settings,
// defaults filled in.
func (w *Worker) startAttrs() []any {
	attrs := []any{
		slog.String("worker_id", w.id),
		slog.String("version", Version),
		slog.Int("worker_threads", w.cfg.WorkerThreads),
		slog.Int("handler_threads", w.cfg.HandlerThreads),
		slog.Int("prefetch", max(0, w.cfg.Prefetch)),
		slog.Duration("lock_time", w.cfg.LockTime),
		slog.Bool("renew_locks", !w.cfg.NoLockRenewal),
		slog.Bool("throttled", w.cfg.Throttle != nil),
		slog.Duration("heartbeat_every", w.cfg.heartbeatEvery),
		slog.Duration("heartbeat_ttl", w.cfg.heartbeatTTL),
	}
	if w.cfg.LogSummaryEvery > 0 {
		attrs = append(attrs, slog.Duration("summary_every", w.cfg.LogSummaryEvery))
	}
	return attrs
}

// stopAttrs are the attributes of a worker's stop line: how long the run
// lasted and what it handled.
func (w *Worker) stopAttrs(r *run) []any {
	d := since(r.startCounts, w.counters())
	return []any{
		slog.String("worker_id", w.id),
		slog.Duration("ran", time.Since(r.started).Round(time.Millisecond)),
		slog.Int64(string(OutcomeSucceeded), d[cSucceeded]),
		slog.Int64(string(OutcomeRetried), d[cRetried]),
		slog.Int64(string(OutcomeFailed), d[cFailed]),
		slog.Int64(string(OutcomeDead), d[cDead]),
		slog.Int64(string(OutcomeCancelled), d[cCancelled]),
	}
}

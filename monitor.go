package mq

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// MonitorInfo is what a worker tells its monitor on every loop turn.
type MonitorInfo struct {
	// Queue is the queue's name.
	Queue string
	// QueueSize is the queue size after the poll.
	QueueSize int64
	// NDryRuns is the count of dry laps in a row, as of the last
	// end-of-queue sleep (0 once a poll found work).
	NDryRuns int64
	// Handled is the number of messages the poll handed out.
	Handled int
	// Slept tells whether the poll reached the end of the queue.
	Slept bool
	// Logger is the worker's logger.
	Logger *slog.Logger
}

// MonitorFunc is called by a worker on every loop turn. It runs on the
// polling goroutines, so it must be quick, and it is called from every
// polling loop concurrently, so it must be safe for concurrent use.
type MonitorFunc func(ctx context.Context, info MonitorInfo)

// QueueSizeMonitor returns a monitor that logs a warning when the queue
// size is over maxQueueSize, at most once every warnEvery: Carmine's
// monitor-fn. The default monitor is QueueSizeMonitor(1000, 6*time.Hour).
// It is safe for concurrent use.
func QueueSizeMonitor(maxQueueSize int64, warnEvery time.Duration) MonitorFunc {
	var mu sync.Mutex
	var last time.Time
	return func(ctx context.Context, info MonitorInfo) {
		if info.QueueSize <= maxQueueSize {
			return
		}
		mu.Lock()
		now := time.Now()
		due := last.IsZero() || now.Sub(last) >= warnEvery
		if due {
			last = now
		}
		mu.Unlock()
		if due && info.Logger != nil {
			info.Logger.WarnContext(ctx, "mq: queue size over its bound",
				slog.Int64("queue_size", info.QueueSize),
				slog.Int64("max_queue_size", maxQueueSize))
		}
	}
}

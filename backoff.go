package mq

import (
	"math/rand/v2"
	"time"

	"github.com/gocarmine/mq/internal/engine"
)

// Backoff gives a wait as a function of a count n: the attempt that failed
// for WorkerConfig.RetryBackoff (from 1), the dry laps in a row for
// EndOfQueueBackoff (0 to 4), the queue size for Throttle. One type for
// the three, so that Constant, and functions of a user's own, serve each.
type Backoff func(n int) time.Duration

// ExpBackoff is Carmine's binary exponential backoff: with n capped at 36
// and b = 2^n, a random time in [b, 2b) * factor / 2, clamped to [lo, hi]
// (a zero bound does not clamp).
func ExpBackoff(n int, lo, hi, factor time.Duration) time.Duration {
	return engine.ExpBackoff(n, lo, hi, factor)
}

// DefaultEndOfQueueBackoff is the default end-of-queue sleep: after n dry
// laps in a row (0 to 4), ExpBackoff(n) with a factor of one second, which
// is 0.5-1 s, 1-2 s, 2-4 s, 4-8 s, then 8-16 s.
func DefaultEndOfQueueBackoff(n int) time.Duration {
	return ExpBackoff(n, 0, 0, time.Second)
}

// DefaultThrottle is Carmine's default throttle, a function of the queue
// size: 200 ms up to 128 queued messages, 100 ms up to 256, 50 ms above.
// A worker uses it only when asked (WorkerConfig.Throttle). A throttled
// worker takes one message per poll, so each of its polling loops handles
// at most 5 messages a second while up to 128 wait, and 20 above 256.
func DefaultThrottle(queueSize int) time.Duration {
	switch {
	case queueSize <= 128:
		return 200 * time.Millisecond
	case queueSize <= 256:
		return 100 * time.Millisecond
	default:
		return 50 * time.Millisecond
	}
}

// Constant returns a Backoff that always answers d, for
// WorkerConfig.RetryBackoff, EndOfQueueBackoff and Throttle.
func Constant(d time.Duration) Backoff {
	return func(int) time.Duration { return d }
}

// jitter spreads d by ±20%, so that workers that sleep together wake apart.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

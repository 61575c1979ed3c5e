package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// alarm wakes a worker's sleeping polling loops when the worker's own
// outcomes, recorded while they slept, made a message ready or due sooner
// than their sleeps end: they poll again, and sleep until it is due.
// Another process's sleepers learn of it through Redis (the outcome moves
// the sleep sentinel, docs/protocol.md §6).
type alarm struct {
	mu sync.Mutex
	ch chan struct{}
}

func newAlarm() alarm { return alarm{ch: make(chan struct{})} }

// wait answers a channel closed by the next ring.
func (a *alarm) wait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ch
}

// ring wakes every loop that took its channel from wait before.
func (a *alarm) ring() {
	a.mu.Lock()
	defer a.mu.Unlock()
	close(a.ch)
	a.ch = make(chan struct{})
}

// SleepCtx sleeps for d or until ctx ends, and answers whether it slept
// the whole time.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ExpBackoff is Carmine's binary exponential backoff: with n capped at 36
// and b = 2^n, a random time in [b, 2b) * factor / 2, clamped to [lo, hi]
// (a zero bound does not clamp). The root package's ExpBackoff is this.
func ExpBackoff(n int, lo, hi, factor time.Duration) time.Duration {
	n = min(max(n, 0), 36)
	b := float64(uint64(1) << n)
	d := time.Duration((b + rand.Float64()*b) * float64(factor) / 2)
	if lo > 0 && d < lo {
		d = lo
	}
	if hi > 0 && d > hi {
		d = hi
	}
	return d
}

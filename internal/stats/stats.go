// Package stats keeps summary statistics over a bounded window of recent
// samples.
//
// Percentiles are exact over the window: a copy is sorted when asked. That
// is simpler and more faithful to "the recent past" than a streaming sketch
// (such as a t-digest) for the window sizes a worker keeps, so no library is
// used.
package stats

import (
	"math"
	"slices"
	"sync"
)

// Summary describes a window of samples.
type Summary struct {
	Last, Min, Max, Mean float64
	// MAD is the mean absolute deviation from the mean.
	MAD      float64
	Variance float64
	P50      float64
	P90      float64
	P99      float64
	// Count is the number of samples ever added; the other fields describe
	// at most the window's size of the latest.
	Count int64
}

// Window holds the latest samples. It is safe for concurrent use.
type Window struct {
	mu    sync.Mutex
	buf   []float64
	next  int
	full  bool
	last  float64
	count int64
}

// NewWindow returns a window of the latest size samples.
func NewWindow(size int) *Window {
	return &Window{buf: make([]float64, max(1, size))}
}

// Add records a sample.
func (w *Window) Add(v float64) {
	w.mu.Lock()
	w.buf[w.next] = v
	w.next++
	if w.next == len(w.buf) {
		w.next, w.full = 0, true
	}
	w.last = v
	w.count++
	w.mu.Unlock()
}

// Reset forgets every sample.
func (w *Window) Reset() {
	w.mu.Lock()
	w.next, w.full, w.last, w.count = 0, false, 0, 0
	w.mu.Unlock()
}

// Summary computes the summary of the window.
func (w *Window) Summary() Summary {
	w.mu.Lock()
	n := w.next
	if w.full {
		n = len(w.buf)
	}
	xs := slices.Clone(w.buf[:n])
	s := Summary{Last: w.last, Count: w.count}
	w.mu.Unlock()
	if n == 0 {
		return s
	}
	slices.Sort(xs)
	s.Min, s.Max = xs[0], xs[n-1]
	var sum float64
	for _, x := range xs {
		sum += x
	}
	s.Mean = sum / float64(n)
	var mad, vr float64
	for _, x := range xs {
		d := x - s.Mean
		mad += math.Abs(d)
		vr += d * d
	}
	s.MAD = mad / float64(n)
	s.Variance = vr / float64(n)
	s.P50 = percentile(xs, 0.50)
	s.P90 = percentile(xs, 0.90)
	s.P99 = percentile(xs, 0.99)
	return s
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

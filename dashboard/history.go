package dashboard

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// sample is one point of a queue's chart.
type sample struct {
	// T is when the counts were read, in Unix milliseconds.
	T       int64 `json:"t"`
	Queued  int64 `json:"queued"`
	Locked  int64 `json:"locked"`
	Backoff int64 `json:"backoff"`
	Done    int64 `json:"done"`
	Dead    int64 `json:"dead"`
}

// series is the history of one queue: the latest samples, oldest first.
type series struct {
	// bucket is when the last sample's interval began: reads within an
	// interval of it replace the last sample rather than add one.
	bucket  time.Time
	samples []sample
}

// history keeps, in memory, the recent counts of every queue shown, one
// sample per interval, for the charts. It samples when asked (each poll of
// the page), so it holds what was seen while someone looked.
type history struct {
	mu     sync.Mutex
	size   int
	every  time.Duration
	queues map[string]*series
}

func newHistory(size int, every time.Duration) *history {
	return &history{size: size, every: every, queues: map[string]*series{}}
}

// record adds the counts c of queue, read at at, and answers a copy of its
// samples. A reading less than an interval after the last sample's began
// replaces it, so the last sample is always the latest reading.
func (h *history) record(queue string, at time.Time, c counts) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.queues[queue]
	if s == nil {
		s = &series{}
		h.queues[queue] = s
	}
	p := sample{T: at.UnixMilli(), Queued: c.Queued, Locked: c.Locked, Backoff: c.Backoff, Done: c.Done, Dead: c.Dead}
	if n := len(s.samples); n > 0 && at.Sub(s.bucket) < h.every && !at.Before(s.bucket) {
		s.samples[n-1] = p
	} else {
		if n == h.size {
			s.samples = slices.Delete(s.samples, 0, 1)
		}
		s.samples = append(s.samples, p)
		s.bucket = at
	}
	return slices.Clone(s.samples)
}

// samples answers a copy of queue's samples.
func (h *history) samples(queue string) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.queues[queue]; s != nil {
		return slices.Clone(s.samples)
	}
	return nil
}

// forget drops queue's history.
func (h *history) forget(queue string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.queues, queue)
}

// forgetAllBut drops the history of every queue not in live: a queue
// that no longer exists (QueueNames lists every queue that does).
func (h *history) forgetAllBut(live []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	isLive := make(map[string]bool, len(live))
	for _, q := range live {
		isLive[q] = true
	}
	for q := range h.queues {
		if !isLive[q] {
			delete(h.queues, q)
		}
	}
}

// keep bounds the history to limit queues: past that, it forgets the queues
// not in live whose last sample is oldest.
func (h *history) keep(live []string, limit int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queues) <= limit {
		return
	}
	isLive := make(map[string]bool, len(live))
	for _, q := range live {
		isLive[q] = true
	}
	type stale struct {
		name string
		last int64
	}
	var gone []stale
	for q, s := range h.queues {
		if !isLive[q] {
			var last int64
			if n := len(s.samples); n > 0 {
				last = s.samples[n-1].T
			}
			gone = append(gone, stale{q, last})
		}
	}
	slices.SortFunc(gone, func(a, b stale) int { return cmp.Compare(a.last, b.last) })
	for _, g := range gone {
		if len(h.queues) <= limit {
			break
		}
		delete(h.queues, g.name)
	}
}

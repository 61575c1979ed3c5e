package dashboard

import (
	"context"
	"slices"
	"sync"
	"time"
)

// counts are a queue's counts by state, as the page shows them.
type counts struct {
	Queued  int64 `json:"queued"`
	Locked  int64 `json:"locked"`
	Backoff int64 `json:"backoff"`
	Done    int64 `json:"done"`
	// Dead is the number of dead letters, which are not in Total.
	Dead   int64 `json:"dead"`
	Total  int64 `json:"total"`
	Paused bool  `json:"paused"`
}

// queueCounts reads queue's counts: Inspector.QueueCounts, one O(1) script
// call in the client's own key layout.
func (h *handler) queueCounts(ctx context.Context, queue string) (counts, error) {
	n, err := h.client.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		return counts{}, err
	}
	return counts{Queued: n.Queued, Locked: n.Locked, Backoff: n.Backoff, Done: n.Done, Dead: n.Dead, Total: n.Total, Paused: n.Paused}, nil
}

// nameCache keeps the last scan for queue names for a while.
type nameCache struct {
	mu    sync.Mutex
	at    time.Time
	names []string
}

// queueNames answers the queues to show: Options.Queues, or the scan's
// (reused for RefreshQueues) with those the history remembers.
func (h *handler) queueNames(ctx context.Context) ([]string, error) {
	if len(h.opts.Queues) > 0 {
		return h.opts.Queues, nil
	}
	h.names.mu.Lock()
	defer h.names.mu.Unlock()
	now := h.now()
	if h.names.names == nil || now.Sub(h.names.at) >= h.opts.RefreshQueues {
		found, err := h.client.Inspector().QueueNames(ctx, "*")
		if err != nil {
			return nil, err
		}
		h.names.names, h.names.at = found, now
		h.hist.keep(found, maxQueues)
	}
	set := make(map[string]bool, len(h.names.names))
	for _, q := range h.names.names {
		set[q] = true
	}
	for _, q := range h.hist.queueNames() {
		set[q] = true
	}
	names := make([]string, 0, len(set))
	for q := range set {
		names = append(names, q)
	}
	slices.Sort(names)
	return names, nil
}

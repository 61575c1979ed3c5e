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
	// HandoffsPending counts the hand-off records waiting for a relay
	// (docs/protocol.md §22).
	HandoffsPending int64 `json:"handoffs_pending"`
	// ReadyHigh and ReadyLow: of the ready messages, at most how many
	// are high and low (mq.QueueCounts).
	ReadyHigh int64 `json:"ready_high"`
	ReadyLow  int64 `json:"ready_low"`
	// limited tells that the queue has limits or uses them: the overview
	// reads them then only.
	limited bool
}

// queueCounts reads queue's counts: Inspector.QueueCounts, one O(1) script
// call in the client's own key layout, its pending hand-offs included.
func (h *handler) queueCounts(ctx context.Context, queue string) (counts, error) {
	n, err := h.client.Inspector().QueueCounts(ctx, queue)
	if err != nil {
		return counts{}, err
	}
	c := counts{Queued: n.Queued, Locked: n.Locked, Backoff: n.Backoff, Done: n.Done, Dead: n.Dead, Total: n.Total, Paused: n.Paused,
		ReadyHigh: n.ReadyHigh, ReadyLow: n.ReadyLow, HandoffsPending: n.HandoffsPending,
		limited: n.Limited || n.LimitSlotsHeld != 0 || n.LimitParked != 0}
	return c, nil
}

// nameCache keeps the last scan for queue names for a while.
type nameCache struct {
	mu    sync.Mutex
	at    time.Time
	names []string
}

// queueNames answers the queues to show: Options.Queues, or
// QueueNames's (the queue registry and a scan, docs/protocol.md §16),
// reused for RefreshQueues. The registry keeps a queue that was emptied,
// so the list needs no memory of its own; a queue cleared meanwhile is
// dropped by the overview that reads it empty (see gone).
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
		h.hist.forgetAllBut(found)
		h.hist.keep(found, maxQueues)
	}
	return slices.Clone(h.names.names), nil
}

// refreshNames makes the next queueNames read the queues again: after an
// action that may have made one (a pause with create).
func (h *handler) refreshNames() {
	h.names.mu.Lock()
	defer h.names.mu.Unlock()
	h.names.names = nil
}

// gone tells whether a queue whose counts c read empty no longer exists
// (it was cleared), and if so forgets it: it leaves the list at once, not
// at the next scan. A queue Options.Queues names is always shown.
func (h *handler) gone(ctx context.Context, queue string, c counts) (bool, error) {
	if len(h.opts.Queues) > 0 || c != (counts{}) {
		return false, nil
	}
	ok, err := h.client.Inspector().QueueExists(ctx, queue)
	if err != nil || ok {
		return false, err
	}
	h.names.mu.Lock()
	h.names.names = slices.DeleteFunc(h.names.names, func(q string) bool { return q == queue })
	h.names.mu.Unlock()
	h.hist.forget(queue)
	return true, nil
}

package dashboard

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
)

// counts are a queue's counts by state, as the page shows them.
type counts struct {
	Queued  int64 `json:"queued"`
	Locked  int64 `json:"locked"`
	Backoff int64 `json:"backoff"`
	Done    int64 `json:"done"`
	// Dead is the number of dead letters; nil until the core keeps them
	// (see deadLetters).
	Dead   *int64 `json:"dead,omitempty"`
	Total  int64  `json:"total"`
	Paused bool   `json:"paused"`
}

// queueCounts reads queue's counts in one O(1) script call.
//
// Client.QueueCounts leaves out the done set's size, which the page
// shows, so this reads the same script through the internal protocol
// package, in the client's key layout (braced names on a cluster client).
// Once QueueCounts reports Done (and dead letters) this becomes a call of
// it. A *redis.Client used with mq.Config.Cluster (a cluster proxy) would
// be read in the wrong layout: the dashboard cannot see that setting.
func (h *handler) queueCounts(ctx context.Context, queue string) (counts, error) {
	n, err := protocol.QueueCounts(ctx, h.rdb, keys.All(queue, h.cluster))
	if err != nil {
		return counts{}, fmt.Errorf("counts of %q: %w", queue, err)
	}
	return counts{Queued: n.Queued, Locked: n.Locked, Backoff: n.Backoff, Done: n.Done, Total: n.Total, Paused: n.Paused}, nil
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
		found, err := h.client.QueueNames(ctx, "*")
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

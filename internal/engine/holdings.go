package engine

import (
	"sync"
	"sync/atomic"
)

// Holdings is what the workers of one process (one client) hold
// together, for quarantine without innocent victims (docs/protocol.md
// §11): a process that dies loses every worker's messages, so what a poll
// tells Redis it holds (PollArgs.Held) is the sum over the rooms that
// share a Holdings, a suspect handed out alone to one of them stops the
// polls of all, and a drain waits until none holds anything. The zero
// value is ready to use.
type Holdings struct {
	taken, lapsed, solo atomic.Int64

	mu    sync.Mutex
	rooms map[*Room]struct{} // the rooms to wake when a message finishes
}

// Share makes r count in h, before its worker starts. A room counts in
// one Holdings at most, for good; Join and Leave say which rooms are woken
// when another's message finishes.
func (r *Room) Share(h *Holdings) { r.shared = h }

// Join adds r to the rooms woken when a message of another finishes (a
// suspect held alone is done, or the process drained).
func (h *Holdings) Join(r *Room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms == nil {
		h.rooms = map[*Room]struct{}{}
	}
	h.rooms[r] = struct{}{}
}

// Leave removes r from the rooms woken; what it still holds stays
// counted until finished.
func (h *Holdings) Leave(r *Room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.rooms, r)
}

// Held is how many messages the process's workers hold: room taken for
// polls under way included, handlings past their lock not.
func (h *Holdings) Held() int64 { return h.taken.Load() - h.lapsed.Load() }

// wake wakes every room but from that waits for room.
func (h *Holdings) wake(from *Room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for r := range h.rooms {
		if r != from {
			r.signalFreed()
		}
	}
}

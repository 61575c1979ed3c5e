package mq

import (
	"context"
	"sync"
	"time"
)

// The client's waits for results share its subscription (pubsub.go,
// one connection): resultHub joins the channel of a wait's queue
// (docs/protocol.md §21) on it, and leaves its channels once no wait was
// left for resultHubLinger. Each wait waits until the subscription to its
// channel is confirmed, and is woken by the notices naming its message.

// resultHubLinger is how long the hub keeps its channels after the last
// wait ended, so that a caller waiting for one result after another does
// not subscribe for each.
const resultHubLinger = time.Minute

// resultHub is the client's waits for results, on the client's
// subscription s.
type resultHub struct {
	s *pubSub

	mu       sync.Mutex
	channels map[string]*hubChannel // nil while none is joined
	waits    int
	idle     *time.Timer
	closed   bool // the client was closed
}

// hubChannel is one channel of the hub.
type hubChannel struct {
	// ready is closed once the subscription to the channel is confirmed;
	// it is replaced by an open one when the connection broke, until the
	// subscription made again is confirmed.
	ready     chan struct{}
	confirmed bool
	waits     map[string]map[*resultWait]struct{} // by message id
}

// resultWait is one wait for the result of one message.
type resultWait struct {
	channel, id string
	// notice holds a wake-up: a notice naming the message, or the
	// subscription's connection broke (notices may have been lost).
	notice chan struct{}
}

// join registers a wait for message id on channel, subscribing to the
// channel if no wait holds it yet. The caller leaves when done.
func (h *resultHub) join(ctx context.Context, channel, id string) (*resultWait, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClientClosed
	}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.channels == nil {
		h.channels = map[string]*hubChannel{}
	}
	ch := h.channels[channel]
	if ch == nil {
		if err := h.s.join(ctx, channel, h); err != nil {
			h.s.leave(channel)
			h.idleCheck()
			return nil, err
		}
		ch = &hubChannel{ready: make(chan struct{}), waits: map[string]map[*resultWait]struct{}{}}
		h.channels[channel] = ch
	}
	w := &resultWait{channel: channel, id: id, notice: make(chan struct{}, 1)}
	if ch.waits[id] == nil {
		ch.waits[id] = map[*resultWait]struct{}{}
	}
	ch.waits[id][w] = struct{}{}
	h.waits++
	return w, nil
}

// ready answers a channel closed once the subscription to w's channel is
// confirmed.
func (h *resultHub) ready(w *resultWait) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[w.channel]; ch != nil {
		return ch.ready
	}
	closed := make(chan struct{}) // the hub was closed: nothing to wait for
	close(closed)
	return closed
}

// leave ends w.
func (h *resultHub) leave(w *resultWait) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[w.channel]
	if ch == nil {
		return // closed meanwhile
	}
	if ws := ch.waits[w.id]; ws != nil {
		if _, ok := ws[w]; ok {
			delete(ws, w)
			h.waits--
		}
		if len(ws) == 0 {
			delete(ch.waits, w.id)
		}
	}
	h.idleCheck()
}

// idleCheck leaves the hub's channels resultHubLinger after the last wait
// ended, unless another one comes first. The caller holds h.mu.
func (h *resultHub) idleCheck() {
	if h.waits > 0 || len(h.channels) == 0 || h.idle != nil {
		return
	}
	h.idle = time.AfterFunc(resultHubLinger, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.idle = nil
		if h.waits == 0 {
			h.shut()
		}
	})
}

// shut leaves the hub's channels and wakes every wait. The caller holds
// h.mu.
func (h *resultHub) shut() {
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	for name, ch := range h.channels {
		h.s.leave(name)
		if !ch.confirmed {
			close(ch.ready)
		}
		for _, ws := range ch.waits {
			for w := range ws {
				wake(w)
			}
		}
	}
	h.channels = nil
	h.waits = 0
}

// close closes the hub for good (Client.Close): waits end with
// ErrClientClosed.
func (h *resultHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.shut()
}

func wake(w *resultWait) {
	select {
	case w.notice <- struct{}{}:
	default:
	}
}

// confirmed marks channel's subscription confirmed (resultHub is the
// subListener of its channels).
func (h *resultHub) confirmed(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[channel]; ch != nil && !ch.confirmed {
		ch.confirmed = true
		close(ch.ready)
	}
}

// message wakes the waits for message id of channel.
func (h *resultHub) message(channel, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[channel]; ch != nil {
		for w := range ch.waits[id] {
			wake(w)
		}
	}
}

// broken marks every channel unconfirmed and wakes every wait.
func (h *resultHub) broken() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.markBroken()
}

// markBroken is broken, for a caller holding h.mu.
func (h *resultHub) markBroken() {
	for _, ch := range h.channels {
		if ch.confirmed {
			ch.confirmed = false
			ch.ready = make(chan struct{})
		}
		for _, ws := range ch.waits {
			for w := range ws {
				wake(w)
			}
		}
	}
}

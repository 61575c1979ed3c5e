package mq

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The client's waits for results share one subscription (one connection),
// opened by the first wait and closed once no wait was left for
// resultHubLinger: resultHub. Each wait joins the channel of its queue
// (docs/protocol.md §21), waits until the subscription to it is
// confirmed, and is woken by the notices naming its message.

const (
	// resultHubLinger is how long the subscription stays open after the
	// last wait ended, so that a caller waiting for one result after
	// another does not open a connection for each.
	resultHubLinger = time.Minute
	// resultHubPing is how long the subscription may stay silent before
	// it is checked with a PING (a broken connection is then made again).
	resultHubPing = 3 * time.Second
)

// resultHub is the client's subscription for results. Its zero value is
// closed; it opens with the first wait.
type resultHub struct {
	mu       sync.Mutex
	rdb      redis.UniversalClient
	sub      *redis.PubSub // nil while closed
	stop     context.CancelFunc
	channels map[string]*hubChannel
	waits    int
	idle     *time.Timer
	closed   bool // the client was closed
}

// hubChannel is one channel of the subscription.
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
func (h *resultHub) join(ctx context.Context, c *Client, channel, id string) (*resultWait, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClientClosed
	}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.sub == nil {
		h.rdb = c.rdb
		h.sub = c.rdb.Subscribe(context.WithoutCancel(ctx)) // no channel yet: no call
		h.channels = map[string]*hubChannel{}
		loopCtx, stop := context.WithCancel(context.Background())
		h.stop = stop
		go h.loop(loopCtx, h.sub)
	}
	ch := h.channels[channel]
	if ch == nil {
		if err := h.sub.Subscribe(ctx, channel); err != nil {
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

// idleCheck closes the subscription resultHubLinger after the last wait
// ended, unless another one comes first. The caller holds h.mu.
func (h *resultHub) idleCheck() {
	if h.waits > 0 || h.sub == nil || h.idle != nil {
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

// shut closes the subscription. The caller holds h.mu.
func (h *resultHub) shut() {
	if h.sub == nil {
		return
	}
	h.stop()
	_ = h.sub.Close()
	h.sub, h.stop, h.idle = nil, nil, nil
	for _, ch := range h.channels {
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
	if h.idle != nil {
		h.idle.Stop()
	}
	h.shut()
}

func wake(w *resultWait) {
	select {
	case w.notice <- struct{}{}:
	default:
	}
}

// loop reads the subscription until ctx ends: confirmations, notices,
// and errors, after which go-redis makes the connection again and
// subscribes anew (each channel is then confirmed again, and every wait
// is woken, since notices may have been lost meanwhile). A connection
// silent for resultHubPing is sent a PING; one that stays silent as long
// again is replaced.
func (h *resultHub) loop(ctx context.Context, sub *redis.PubSub) {
	pause := 10 * time.Millisecond
	pinged := false
	for ctx.Err() == nil {
		msg, err := sub.ReceiveTimeout(ctx, resultHubPing)
		if err != nil && isTimeout(err) {
			if pinged {
				if sub = h.replace(ctx, sub); sub == nil {
					return
				}
				pinged = false
				continue
			}
			pinged = true
			err = sub.Ping(ctx)
		} else {
			pinged = false
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.broken()
			select { // Redis may be down: do not spin
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.confirm(m.Channel)
			}
		case *redis.Message:
			h.notify(m.Channel, m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (h *resultHub) confirm(channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[channel]; ch != nil && !ch.confirmed {
		ch.confirmed = true
		close(ch.ready)
	}
}

func (h *resultHub) notify(channel, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.channels[channel]; ch != nil {
		for w := range ch.waits[id] {
			wake(w)
		}
	}
}

// replace replaces sub, which did not answer a PING, by a new
// subscription to the same channels, and answers it (nil when the hub
// moved on meanwhile: closed, or opened anew).
func (h *resultHub) replace(ctx context.Context, sub *redis.PubSub) *redis.PubSub {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sub != sub {
		return nil
	}
	_ = sub.Close()
	channels := make([]string, 0, len(h.channels))
	for name := range h.channels {
		channels = append(channels, name)
	}
	h.sub = h.rdb.Subscribe(ctx, channels...)
	h.markBroken()
	return h.sub
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

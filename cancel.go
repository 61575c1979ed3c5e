package mq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// CancelResult says what a [Client.Cancel] did (docs/protocol.md §20).
type CancelResult string

// The results of a cancel.
const (
	// CancelRemoved: the message was queued (waiting for a delay or a
	// retry's backoff, or not): it is deleted and never runs.
	CancelRemoved CancelResult = "removed"
	// CancelSignalled: the message is being handled. Its handler's context
	// ends, with the cause ErrCancelled, as soon as the handling's worker
	// hears of it (through Redis, at once; else at its next lock renewal),
	// and whatever the handler answers, its outcome is recorded as
	// OutcomeCancelled: not retried, not a dead letter. Should its worker
	// die, no poll hands it out again.
	CancelSignalled CancelResult = "signalled"
	// CancelDone: the message is done already (collected soon, or in its
	// dedupe window): nothing was changed.
	CancelDone CancelResult = "done"
	// CancelNotFound: the queue does not hold the message.
	CancelNotFound CancelResult = "not_found"
)

// Cancel cancels message id of queue from any process: a queued message
// is deleted and never runs (CancelRemoved); a message being handled has
// its handler's context ended with the cause ErrCancelled and its outcome
// recorded as OutcomeCancelled (CancelSignalled). An id the queue does
// not hold answers CancelNotFound, with no error. A Carmine worker holding
// the message does not hear of the cancel; its outcome is still recorded
// by its own rules (docs/protocol.md §13).
func (c *Client) Cancel(ctx context.Context, queue, id string) (CancelResult, error) {
	if err := ValidateQueueName(queue); err != nil {
		return "", err
	}
	if err := validateMessageID(id); err != nil {
		return "", err
	}
	a, err := within(c, ctx, func(ctx context.Context) (protocol.CancelAnswer, error) {
		return protocol.Cancel(ctx, c.rdb, c.keys(queue), id)
	})
	if err != nil {
		return "", fmt.Errorf("mq: cancel %q in %q: %w", id, queue, redisError(err))
	}
	switch a {
	case protocol.CancelRemoved:
		return CancelRemoved, nil
	case protocol.CancelSignalled:
		return CancelSignalled, nil
	case protocol.CancelDone:
		return CancelDone, nil
	}
	return CancelNotFound, nil
}

// Cancel is Client.Cancel, for administrators.
func (in *Inspector) Cancel(ctx context.Context, queue, id string) (CancelResult, error) {
	return in.c.Cancel(ctx, queue, id)
}

// cancelHeardFor is how long a cancel heard is kept for a handling that
// starts after it: a message handed out before its cancel, and still on its
// way to a handler (prefetched) when the cancel came.
const cancelHeardFor = time.Minute

// cancelWatch is a client's watch of the cancel channels of its workers'
// queues (docs/protocol.md §20), on the client's one subscription
// (pubsub.go), shared by all its workers, joined with a queue's first
// worker and left with its last, and the handlings it may cancel. The
// subscription is made again after a connection or Redis is lost; a
// cancel published meanwhile is caught by the next lock renewal.
//
// Each handler thread watches its handlings of a queue through a slot of
// its own (cancelSlot), made once: a handling's watch touches only its
// slot, and a cancel, rare, looks at every slot of its channel.
type cancelWatch struct {
	c *Client

	mu       sync.Mutex
	channels map[string]int                      // channel -> workers joined
	slots    map[string]map[*cancelSlot]struct{} // channel -> its handler threads' slots
	heard    map[cancelKey]time.Time             // cancels heard, for cancelHeardFor
	closed   bool
	// lastHeard is when the last cancel was heard, by the monotonic
	// clock (time.Since(epoch), plus one; 0 for never): a handling
	// starting later than cancelHeardFor after it skips heard.
	epoch     time.Time
	lastHeard atomic.Int64
	// deaf, set by tests, drops every cancel published, as if the
	// subscription missed them: renewals still catch them.
	deaf bool
}

// cancelKey names one message of one queue: its channel, id and
// first-enqueue time (Unix ms), so that a cancel never reaches a later
// message of the same id.
type cancelKey struct {
	channel, id string
	udt         int64
}

// cancelSlot is one handler thread's watch of its handlings of one queue
// (an engine.CancelWatcher): the message of the handling it runs, if any.
type cancelSlot struct {
	cw      *cancelWatch
	channel string

	mu     sync.Mutex
	id     string
	udt    int64
	cancel context.CancelCauseFunc // nil between handlings
}

func newCancelWatch(c *Client) *cancelWatch {
	return &cancelWatch{c: c, channels: map[string]int{}, slots: map[string]map[*cancelSlot]struct{}{},
		heard: map[cancelKey]time.Time{}, epoch: time.Now()}
}

// join subscribes to queue's cancel channel for a worker of it.
func (cw *cancelWatch) join(queue string) {
	ch := protocol.CancelChannel(queue, cw.c.cfg.Cluster)
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.closed {
		return
	}
	cw.channels[ch]++
	if cw.channels[ch] == 1 {
		// (an error here leaves the channel to the reconnect, which
		// subscribes to every channel joined)
		_ = cw.c.subs.join(context.Background(), ch, cw)
	}
}

// leave undoes one join.
func (cw *cancelWatch) leave(queue string) {
	ch := protocol.CancelChannel(queue, cw.c.cfg.Cluster)
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.channels[ch]--; cw.channels[ch] > 0 {
		return
	}
	delete(cw.channels, ch)
	if !cw.closed {
		cw.c.subs.leave(ch)
	}
}

// close ends the watch (the client's subscription closes with the
// client).
func (cw *cancelWatch) close() {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.closed = true
}

// message hears a cancel published on channel (a subListener of the
// client's subscription): "<first-enqueue time> <id>".
func (cw *cancelWatch) message(channel, payload string) {
	udt, id, ok := strings.Cut(payload, " ")
	if !ok {
		return
	}
	ms, err := strconv.ParseInt(udt, 10, 64)
	if err != nil {
		return
	}
	cw.fire(cancelKey{channel: channel, id: id, udt: ms})
}

// confirmed and broken: nothing to do, a cancel missed while the
// connection was broken is caught by the next lock renewal.
func (cw *cancelWatch) confirmed(string) {}
func (cw *cancelWatch) broken()          {}

// fire cancels the handlings of k, and keeps k for those about to start.
func (cw *cancelWatch) fire(k cancelKey) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.deaf {
		return
	}
	now := time.Now()
	if len(cw.heard) >= 1024 {
		for h, at := range cw.heard {
			if now.Sub(at) > cancelHeardFor {
				delete(cw.heard, h)
			}
		}
	}
	cw.heard[k] = now
	// Before the slots are read: a handling that starts meanwhile either
	// is in its slot already, or finds lastHeard set (Watch).
	cw.lastHeard.Store(int64(time.Since(cw.epoch)) + 1)
	for s := range cw.slots[k.channel] {
		s.mu.Lock()
		if s.cancel != nil && s.id == k.id && s.udt == k.udt {
			s.cancel(ErrCancelled)
		}
		s.mu.Unlock()
	}
}

// watcher answers a new slot for a handler thread's handlings of the
// queue whose cancel channel is channel (protocol.CancelChannel).
func (cw *cancelWatch) watcher(channel string) *cancelSlot {
	s := &cancelSlot{cw: cw, channel: channel}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.slots[channel] == nil {
		cw.slots[channel] = map[*cancelSlot]struct{}{}
	}
	cw.slots[channel][s] = struct{}{}
	return s
}

// Watch registers the handling of the message of step st, which cancel
// ends: no allocation, and no lock but the slot's own unless a cancel was
// heard within cancelHeardFor.
func (s *cancelSlot) Watch(st *protocol.Step, cancel context.CancelCauseFunc) {
	s.mu.Lock()
	s.id, s.udt, s.cancel = st.ID, st.FirstEnqueued, cancel
	s.mu.Unlock()
	cw := s.cw
	last := cw.lastHeard.Load()
	if last == 0 || int64(time.Since(cw.epoch))+1-last > int64(cancelHeardFor) {
		return
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if at, ok := cw.heard[cancelKey{channel: s.channel, id: st.ID, udt: st.FirstEnqueued}]; ok && time.Since(at) <= cancelHeardFor {
		cancel(ErrCancelled)
	}
}

// Unwatch unregisters the handling that ended.
func (s *cancelSlot) Unwatch() {
	s.mu.Lock()
	s.id, s.cancel = "", nil
	s.mu.Unlock()
}

// Close unregisters the slot, its thread done.
func (s *cancelSlot) Close() {
	cw := s.cw
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if set := cw.slots[s.channel]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(cw.slots, s.channel)
		}
	}
}

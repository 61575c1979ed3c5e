package mq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
type cancelWatch struct {
	c *Client

	mu       sync.Mutex
	channels map[string]int             // channel -> workers joined
	running  map[cancelKey]*cancelEntry // handlings by message, each a list (almost always of one)
	heard    map[cancelKey]time.Time    // cancels heard, for cancelHeardFor
	closed   bool
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

// cancelEntry is one handling a cancel ends; next is another handling of
// the same message (a handling whose lock ran out while a second one
// started), nil almost always.
type cancelEntry struct {
	cancel context.CancelCauseFunc
	next   *cancelEntry
}

func newCancelWatch(c *Client) *cancelWatch {
	return &cancelWatch{c: c, channels: map[string]int{}, running: map[cancelKey]*cancelEntry{},
		heard: map[cancelKey]time.Time{}}
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
	for e := cw.running[k]; e != nil; e = e.next {
		e.cancel(ErrCancelled)
	}
	if len(cw.heard) >= 1024 {
		for h, at := range cw.heard {
			if now.Sub(at) > cancelHeardFor {
				delete(cw.heard, h)
			}
		}
	}
	cw.heard[k] = now
}

// watch registers a handling of the message of step s, of the queue whose
// cancel channel is channel (protocol.CancelChannel), which cancel ends,
// and answers the function that unregisters it. It runs once per
// handling: one allocation besides the map's entry.
func (cw *cancelWatch) watch(channel string, s *protocol.Step, cancel context.CancelCauseFunc) func() {
	k := cancelKey{channel: channel, id: s.ID, udt: s.FirstEnqueued}
	e := &cancelEntry{cancel: cancel}
	cw.mu.Lock()
	if len(cw.heard) > 0 {
		if at, ok := cw.heard[k]; ok && time.Since(at) <= cancelHeardFor {
			cancel(ErrCancelled)
		}
	}
	e.next = cw.running[k]
	cw.running[k] = e
	cw.mu.Unlock()
	return func() { cw.unwatch(k, e) }
}

// unwatch unregisters handling e of message k.
func (cw *cancelWatch) unwatch(k cancelKey, e *cancelEntry) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	head := cw.running[k]
	if head == e {
		if e.next == nil {
			delete(cw.running, k)
		} else {
			cw.running[k] = e.next
		}
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == e {
			p.next = e.next
			return
		}
	}
}

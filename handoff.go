package mq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// DefaultHandoffWindow is Config.HandoffWindow's default.
const DefaultHandoffWindow = time.Hour

// FollowUp is a message that continues a handler's work, handed off with
// its success ([Then]): enqueued exactly once, however often the outcome
// is sent again and whatever process dies on the way (docs/protocol.md
// §22).
type FollowUp struct {
	// Queue is the queue to enqueue it to; "" for the handler's own.
	Queue string
	// Message is the message, encoded with the client's codec as an
	// enqueue would.
	Message any
	// Options are its enqueue options (nil for defaults). Without a
	// MessageID, the id is derived from the handling: the handled
	// message's id, its lock token and the follow-up's position, so that
	// the same handling always names it the same. Its dedupe window
	// (UniqueFor) is at least Config.HandoffWindow. CanRequeue is
	// refused, as with any message policy.
	Options *EnqueueOptions
}

// Then is a handler's answer of success that hands off follow-ups: the
// success and the follow-ups are recorded in one step, in Redis, and a
// relay enqueues each follow-up exactly once. A success whose lock was
// lost (fenced off) hands off nothing.
//
//	return mq.Then(mq.FollowUp{Queue: "resize", Message: img})
//
// A follow-up that cannot be encoded makes the handling a failure, under
// the retry policy. A Carmine worker handling the same queue records no
// follow-ups.
func Then(followUps ...FollowUp) error {
	return &Answer{Kind: OutcomeSucceeded, FollowUps: followUps}
}

// followUpID derives the id of a handling's n-th follow-up.
func followUpID(parent string, token int64, n int) string {
	id := parent + "/" + strconv.FormatInt(token, 10) + "/" + strconv.Itoa(n)
	if len(id) > MaxMessageIDLength {
		sum := sha256.Sum256([]byte(id))
		id = "fu-" + hex.EncodeToString(sum[:])
	}
	return id
}

// encodeFollowUps encodes a handling's follow-ups as outcome.lua appends
// them to handoffs. parent and token name the handling.
func (c *Client) encodeFollowUps(queue, parent string, token int64, fs []FollowUp) ([]byte, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	out := make([]protocol.FollowUp, len(fs))
	for i, f := range fs {
		q := f.Queue
		if q == "" {
			q = queue
		}
		var o EnqueueOptions
		if f.Options != nil {
			o = *f.Options
		}
		if o.MessageID == "" {
			o.MessageID = followUpID(parent, token, i)
		}
		o.UniqueFor = max(o.UniqueFor, c.cfg.HandoffWindow)
		m, err := c.enqueueMessage(q, f.Message, &o)
		if err != nil {
			return nil, fmt.Errorf("mq: follow-up %d to %q: %w", i, q, err)
		}
		out[i] = protocol.FollowUp{Queue: q, Msg: m}
	}
	return protocol.EncodeFollowUps(out)
}

// relayPage is how many handoffs records one relay round reads.
const relayPage = 100

// relay delivers the records waiting in queue's handoffs (docs/protocol.md
// §22): each follow-up enqueued into its queue, each batch tick counted in
// its completion queue, each completion enqueued; then it removes them. A
// record delivered twice (a relay that died before removing it, or two
// relays at once) is refused the second time: follow-ups and completions
// by their ids' dedupe windows, ticks by batch-seen. It answers how many
// records it delivered; an error leaves the rest for the next round.
func (c *Client) relay(ctx context.Context, queue string) (int, error) {
	total := 0
	for {
		ks := c.keys(queue)
		raws, err := protocol.ReadHandoffs(ctx, c.rdb, ks, relayPage)
		if err != nil || len(raws) == 0 {
			return total, err
		}
		var done []string
		var completed []string // completion queues with a completion to enqueue
		var errs []error
		for _, raw := range raws {
			h, err := protocol.DecodeHandoff(raw)
			if err == nil {
				err = c.deliver(ctx, queue, h, &completed)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			done = append(done, raw)
		}
		if err := protocol.RemoveHandoffs(ctx, c.rdb, ks, done); err != nil {
			return total, err
		}
		total += len(done)
		again := false // a completion appended to this queue's own handoffs
		for _, q := range completed {
			if q == queue {
				again = true
			} else if _, err := c.relay(ctx, q); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return total, errors.Join(errs...)
		}
		if len(raws) < relayPage && !again {
			return total, nil
		}
	}
}

// deliver delivers one record of queue's handoffs.
func (c *Client) deliver(ctx context.Context, queue string, h protocol.Handoff, completed *[]string) error {
	switch h.Kind {
	case protocol.HandoffFollowUps:
		byQueue := map[string][]protocol.EnqueueMessage{}
		var order []string
		for _, f := range h.FollowUps {
			if _, ok := byQueue[f.Queue]; !ok {
				order = append(order, f.Queue)
			}
			byQueue[f.Queue] = append(byQueue[f.Queue], f.Msg)
		}
		for _, q := range order {
			if err := c.enqueueHandoff(ctx, q, byQueue[q]); err != nil {
				return err
			}
		}
		return nil
	case protocol.HandoffTick:
		if err := c.register(ctx, h.Tick.Queue); err != nil {
			return err
		}
		answer, err := protocol.BatchTick(ctx, c.rdb, c.keys(h.Tick.Queue), h.Tick, c.cfg.HandoffWindow)
		if err != nil {
			return fmt.Errorf("mq: batch %s tick: %w", h.Tick.Batch, redisError(err))
		}
		if answer == protocol.TickComplete {
			*completed = append(*completed, h.Tick.Queue)
		}
		return nil
	case protocol.HandoffCompletion:
		st, err := protocol.BatchRead(ctx, c.rdb, c.keys(queue), h.Batch)
		if err != nil {
			return err
		}
		if !st.Found { // cleared meanwhile: nothing to enqueue
			return nil
		}
		m := st.Completion.Msg
		meta := decodeMetadata(m.Metadata)
		if meta == nil {
			meta = map[string]string{}
		}
		meta[metaBatch] = h.Batch
		meta[metaBatchSucceeded] = strconv.FormatInt(st.Succeeded, 10)
		meta[metaBatchDead] = strconv.FormatInt(st.Dead, 10)
		if m.Metadata, err = encodeMetadata(meta); err != nil {
			return err
		}
		return c.enqueueHandoff(ctx, st.Completion.Queue, []protocol.EnqueueMessage{m})
	}
	return nil
}

// enqueueHandoff enqueues messages a relay delivers to queue. Every one
// has a dedupe window, so an answer of duplicate is a repeat of an
// earlier delivery: delivered.
func (c *Client) enqueueHandoff(ctx context.Context, queue string, ms []protocol.EnqueueMessage) error {
	if err := c.register(ctx, queue); err != nil {
		return err
	}
	call := c.enqueueCall(len(ms))
	call.Messages = append(call.Messages, ms...)
	a := protocol.Enqueue(ctx, c.rdb, c.keys(queue), call)
	if a.Err != nil {
		return fmt.Errorf("mq: hand-off to %q: %w", queue, redisError(a.Err))
	}
	for i, code := range a.Codes {
		switch code {
		case protocol.Added, protocol.Updated, protocol.DuplicateQueued, protocol.DuplicateLocked, protocol.DuplicateBackoff:
		default:
			c.log.Warn("mq: hand-off refused", slog.String("queue", queue),
				slog.String("id", ms[i].ID), slog.String("answer", string(code)))
		}
	}
	return nil
}

// PendingHandoffs answers how many hand-off records (follow-ups, batch
// ticks, batch completions) wait in queue's handoffs for the relay
// (docs/protocol.md §22).
func (in *Inspector) PendingHandoffs(ctx context.Context, queue string) (int64, error) {
	if err := ValidateQueueName(queue); err != nil {
		return 0, err
	}
	n, err := protocol.CountHandoffs(ctx, in.c.rdb, in.c.keys(queue))
	return n, redisError(err)
}

// relayInterval is how often a worker's relay looks for hand-off records
// without being woken: records a dead process left, ticks of messages
// buried by a poll.
const relayInterval = 2 * time.Second

// kickRelay wakes the worker's relay.
func (w *Worker) kickRelay() {
	select {
	case w.relayKick <- struct{}{}:
	default:
	}
}

// runRelay runs the worker's hand-off relay for its queue (docs/protocol.md
// §22) until polling stops (pollCtx), then, once the flusher recorded the
// last outcomes, delivers what they left, within closeGrace; it answers a
// channel closed once it returned. It delivers when woken by an outcome
// that may have left records, and every relayInterval.
func (w *Worker) runRelay(base, pollCtx context.Context, flusherDone <-chan struct{}) chan struct{} {
	done := make(chan struct{})
	once := func(ctx context.Context) {
		if _, err := w.c.relay(ctx, w.queue); err != nil && ctx.Err() == nil {
			w.log.Warn("mq: relaying hand-offs failed; they stay for the next round", slog.Any("error", err))
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(relayInterval)
		defer t.Stop()
		once(pollCtx)
		for {
			select {
			case <-w.relayKick:
				once(pollCtx)
			case <-t.C:
				once(pollCtx)
			case <-pollCtx.Done():
				<-flusherDone
				ctx, cancel := context.WithTimeout(base, closeGrace)
				once(ctx)
				cancel()
				return
			}
		}
	}()
	return done
}

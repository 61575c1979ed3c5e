package mq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
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

// followUpID derives the id of a handling's n-th follow-up, in one
// allocation.
func followUpID(parent string, token int64, n int) string {
	var num [20]byte
	var b strings.Builder
	b.Grow(len(parent) + 24)
	b.WriteString(parent)
	b.WriteByte('/')
	b.Write(strconv.AppendInt(num[:0], token, 10))
	b.WriteByte('/')
	b.Write(strconv.AppendInt(num[:0], int64(n), 10))
	id := b.String()
	if len(id) > MaxMessageIDLength {
		sum := sha256.Sum256([]byte(id))
		id = "fu-" + hex.EncodeToString(sum[:])
	}
	return id
}

// encodeFollowUps encodes a handling's follow-ups as outcome.lua takes
// them (docs/protocol.md §22). parent and token name the handling. A
// follow-up the script can enqueue itself (inScript) goes in the script,
// atomically with the success; the others go to handoffs, for the relay,
// with a dedupe window of at least Config.HandoffWindow.
func (c *Client) encodeFollowUps(ctx context.Context, queue, parent string, token int64, fs []FollowUp) ([]byte, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	var inBuf [4]protocol.InScriptFollowUp // (a handler's few follow-ups: no allocation)
	in := inBuf[:0]
	var relay []protocol.FollowUp
	for i, f := range fs {
		q := f.Queue
		if q == "" {
			q = queue
		}
		var o EnqueueOptions
		if f.Options != nil {
			o = *f.Options
		}
		derived := o.MessageID == ""
		if derived {
			o.MessageID = followUpID(parent, token, i)
		}
		m, err := c.enqueueMessage(q, f.Message, &o)
		if err != nil {
			return nil, fmt.Errorf("mq: follow-up %d to %q: %w", i, q, err)
		}
		if derived && m.IsPlain() && c.inScript(ctx, queue, q) {
			var target string
			if q != queue {
				target = c.key(q, keys.Messages)
			}
			in = append(in, protocol.InScriptFollowUp{Target: target, ID: m.ID, Data: m.Data,
				LockTime: m.LockTime, Metadata: m.Metadata})
			continue
		}
		o.UniqueFor = max(o.UniqueFor, c.cfg.HandoffWindow)
		if m.Policy, err = policyOf(&o); err != nil {
			return nil, fmt.Errorf("mq: follow-up %d to %q: %w", i, q, err)
		}
		relay = append(relay, protocol.FollowUp{Queue: q, Msg: m})
	}
	var rec []byte
	if len(relay) > 0 {
		rec, _ = protocol.EncodeFollowUps(relay)
	}
	if len(in) == 0 {
		return rec, nil
	}
	return protocol.EncodeInScript(in, rec), nil
}

// inScript tells whether the script recording an outcome of queue can
// enqueue a follow-up to target itself: target is queue, or the client
// is not a Cluster client, or target's keys share queue's slot. A target
// other than queue is registered first (§16), as an enqueue would
// register it; a registration that fails is tried again with the next
// follow-up and stops nothing (the registry only lists queues).
func (c *Client) inScript(ctx context.Context, queue, target string) bool {
	if target == queue {
		return true
	}
	if c.cfg.Cluster && keys.Slot(c.key(queue, keys.Messages)) != keys.Slot(c.key(target, keys.Messages)) {
		return false
	}
	if err := c.register(ctx, target); err != nil {
		c.log.Debug("mq: registering a follow-up's queue failed; tried again with the next", slog.String("queue", target), slog.Any("error", err))
	}
	return true
}

// relayPage is how many handoffs records one relay round reads.
const relayPage = 100

// relay delivers the records waiting in queue's handoffs (docs/protocol.md
// §22): each follow-up enqueued into its queue, each batch tick counted in
// its completion queue, each completion enqueued; then it removes them. A
// record delivered twice (a relay that died before removing it, or two
// relays at once) is refused the second time: follow-ups and completions
// by their ids' dedupe windows, ticks by batch-seen. A page of records
// costs a few round trips whatever its size: one read, one pipeline of
// script calls per target queue, one pipeline of removals. It answers how
// many records it delivered; an error leaves the records it concerns for
// the next round.
func (c *Client) relay(ctx context.Context, queue string) (int, error) {
	total := 0
	for {
		raws, err := protocol.ReadHandoffs(ctx, c.rdb, c.keys(queue), relayPage)
		if err != nil || len(raws) == 0 {
			return total, err
		}
		n, again, err := c.relayRecords(ctx, queue, raws)
		total += n
		if err != nil || (len(raws) < relayPage && !again) {
			return total, err
		}
	}
}

// relayRecords delivers records of queue's handoffs, then removes those
// delivered, and relays at once the other queues whose batch completed;
// again tells that a completion was appended to queue's own handoffs.
func (c *Client) relayRecords(ctx context.Context, queue string, raws []string) (delivered int, again bool, err error) {
	r := relayRound{c: c, queue: queue, failed: make([]bool, len(raws))}
	r.deliver(ctx, raws)
	var done []string
	for i, raw := range raws {
		if !r.failed[i] {
			done = append(done, raw)
		}
	}
	if err := protocol.RemoveHandoffs(ctx, c.rdb, c.keys(queue), done); err != nil {
		return 0, false, err
	}
	for _, q := range r.completed {
		if q == queue {
			again = true
		} else if _, err := c.relay(ctx, q); err != nil {
			r.errs = append(r.errs, err)
		}
	}
	return len(done), again, errors.Join(r.errs...)
}

// relayRound is one page of a relay: the records that failed, by
// position, and the completion queues whose batch completed.
type relayRound struct {
	c         *Client
	queue     string
	failed    []bool
	errs      []error
	completed []string
}

// fail marks record i failed; the round's error quotes the first few
// failures only.
func (r *relayRound) fail(i int, err error) {
	r.failed[i] = true
	if len(r.errs) < 3 {
		r.errs = append(r.errs, err)
	}
}

// deliver delivers a page of records, grouped by target queue.
func (r *relayRound) deliver(ctx context.Context, raws []string) {
	type item struct {
		rec int
		msg protocol.EnqueueMessage
	}
	type tick struct {
		rec int
		t   protocol.MemberTick
	}
	msgs := map[string][]item{}
	ticks := map[string][]tick{}
	var mqs, tqs []string // target queues, in order
	for i, raw := range raws {
		h, err := protocol.DecodeHandoff(raw)
		if err != nil {
			r.fail(i, err)
			continue
		}
		switch h.Kind {
		case protocol.HandoffFollowUps:
			for _, f := range h.FollowUps {
				if _, ok := msgs[f.Queue]; !ok {
					mqs = append(mqs, f.Queue)
				}
				msgs[f.Queue] = append(msgs[f.Queue], item{i, f.Msg})
			}
		case protocol.HandoffTick:
			if _, ok := ticks[h.Tick.Queue]; !ok {
				tqs = append(tqs, h.Tick.Queue)
			}
			ticks[h.Tick.Queue] = append(ticks[h.Tick.Queue], tick{i, h.Tick})
		case protocol.HandoffCompletion:
			m, q, err := r.c.completionOf(ctx, r.queue, h.Batch)
			if err == nil && q != "" {
				msgs[q] = append(msgs[q], item{i, m})
				if len(msgs[q]) == 1 {
					mqs = append(mqs, q)
				}
			} else if err != nil {
				r.fail(i, err)
			}
		}
	}
	for _, q := range mqs {
		items := msgs[q]
		ms := make([]protocol.EnqueueMessage, len(items))
		for k, it := range items {
			ms[k] = it.msg
		}
		errs := r.c.enqueueHandoffs(ctx, q, ms)
		for k, err := range errs {
			if err != nil {
				r.fail(items[k].rec, err)
			}
		}
	}
	for _, q := range tqs {
		ts := ticks[q]
		if err := r.c.register(ctx, q); err != nil {
			for _, t := range ts {
				r.fail(t.rec, err)
			}
			continue
		}
		mts := make([]protocol.MemberTick, len(ts))
		for k, t := range ts {
			mts[k] = t.t
		}
		answers, errs := protocol.BatchTicks(ctx, r.c.rdb, r.c.keys(q), mts, r.c.cfg.HandoffWindow)
		for k := range ts {
			switch {
			case errs[k] != nil:
				r.fail(ts[k].rec, fmt.Errorf("mq: batch %s tick: %w", ts[k].t.Batch, redisError(errs[k])))
			case answers[k] == protocol.TickComplete:
				r.completed = append(r.completed, q)
			}
		}
	}
}

// completionOf answers the completion message of batch b of queue, with
// the members' counts in its metadata, and its queue ("" when the batch
// is gone: cleared, nothing to enqueue).
func (c *Client) completionOf(ctx context.Context, queue, b string) (protocol.EnqueueMessage, string, error) {
	st, err := protocol.BatchRead(ctx, c.rdb, c.keys(queue), b)
	if err != nil || !st.Found {
		return protocol.EnqueueMessage{}, "", err
	}
	m := st.Completion.Msg
	meta := decodeMetadata(m.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaBatch] = b
	meta[metaBatchSucceeded] = strconv.FormatInt(st.Succeeded, 10)
	meta[metaBatchDead] = strconv.FormatInt(st.Dead, 10)
	if st.Cancelled > 0 {
		meta[metaBatchCancelled] = strconv.FormatInt(st.Cancelled, 10)
	}
	if m.Metadata, err = encodeMetadata(meta); err != nil {
		return m, "", err
	}
	return m, st.Completion.Queue, nil
}

// enqueueHandoffs enqueues messages a relay delivers to queue, in script
// calls of up to enqueueBatch, in one round trip, and answers each
// message's error (nil: delivered). Every one has a dedupe window, so an
// answer of duplicate is a repeat of an earlier delivery: delivered.
func (c *Client) enqueueHandoffs(ctx context.Context, queue string, ms []protocol.EnqueueMessage) []error {
	errs := make([]error, len(ms))
	if err := c.register(ctx, queue); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var calls []protocol.EnqueueCall
	for i, m := range ms {
		if i%enqueueBatch == 0 {
			calls = append(calls, c.enqueueCall(min(enqueueBatch, len(ms)-i)))
		}
		last := &calls[len(calls)-1]
		last.Messages = append(last.Messages, m)
	}
	for n, a := range protocol.EnqueuePipelined(ctx, c.rdb, c.keys(queue), calls) {
		for k := range calls[n].Messages {
			i := n*enqueueBatch + k
			if a.Err != nil {
				errs[i] = fmt.Errorf("mq: hand-off to %q: %w", queue, redisError(a.Err))
				continue
			}
			switch code := a.Codes[k]; code {
			case protocol.Added, protocol.Updated, protocol.DuplicateQueued, protocol.DuplicateLocked, protocol.DuplicateBackoff:
			default:
				c.log.Warn("mq: hand-off refused", slog.String("queue", queue),
					slog.String("id", ms[i].ID), slog.String("answer", string(code)))
			}
		}
	}
	return errs
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
const relayInterval = 5 * time.Second

// ownRecords holds what a worker's relay has to deliver first: the
// follow-up records of its own successes, known without reading
// handoffs (so that the relays of several processes do not all deliver
// the same records), and whether an outcome may have left a batch tick,
// which only a read of handoffs finds.
type ownRecords struct {
	mu    sync.Mutex
	recs  []string
	sweep bool
}

// add notes what a recorded outcome left for the relay.
func (o *ownRecords) add(p engine.Pending) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec := protocol.RelayRecord(p.FollowUps)
	if rec != nil {
		o.recs = append(o.recs, string(rec))
	}
	if rec == nil || p.Batch {
		o.sweep = true
	}
}

// take answers and forgets what there is to deliver.
func (o *ownRecords) take() ([]string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	recs, sweep := o.recs, o.sweep
	o.recs, o.sweep = nil, false
	return recs, sweep
}

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
	warn := func(ctx context.Context, err error) {
		if err != nil && ctx.Err() == nil && !errors.Is(err, redis.ErrClosed) {
			w.log.Warn("mq: relaying hand-offs failed; they stay for the next round", slog.Any("error", err))
		}
	}
	once := func(ctx context.Context) {
		_, err := w.c.relay(ctx, w.queue)
		warn(ctx, err)
	}
	// own delivers the worker's own records (a page at a time), and
	// reads handoffs only when an outcome may have left a tick, a
	// completion was appended, or a delivery failed.
	own := func(ctx context.Context) {
		recs, sweep := w.relayOwn.take()
		for len(recs) > 0 {
			page := recs[:min(len(recs), relayPage)]
			recs = recs[len(page):]
			_, again, err := w.c.relayRecords(ctx, w.queue, page)
			warn(ctx, err)
			sweep = sweep || again || err != nil
		}
		if sweep {
			once(ctx)
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
				own(pollCtx)
			case <-t.C:
				once(pollCtx)
			case <-pollCtx.Done():
				<-flusherDone
				ctx, cancel := context.WithTimeout(base, closeGrace)
				w.relayOwn.take()
				once(ctx)
				cancel()
				return
			}
		}
	}()
	return done
}

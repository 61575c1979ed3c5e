package mq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/uuid"
)

// BatchMessage is one message of [Client.EnqueueBatch]: a member, or the
// batch's completion.
type BatchMessage struct {
	// Queue is the queue to enqueue it to.
	Queue string
	// Message is the message, encoded with the client's codec.
	Message any
	// Options are its enqueue options (nil for defaults). A member may
	// not CanRequeue (its batch is part of its policy). The completion's
	// MessageID defaults to "batch-<id>-done"; its dedupe window is at
	// least Config.HandoffWindow.
	Options *EnqueueOptions
}

// The metadata a batch's completion message carries (docs/protocol.md
// §22), read with [Message.BatchCounts].
const (
	metaBatch          = "mq.batch"
	metaBatchSucceeded = "mq.batch.succeeded"
	metaBatchDead      = "mq.batch.dead"
	metaBatchCancelled = "mq.batch.cancelled"
)

// BatchCounts are a finished batch's counts, as its completion message
// carries them.
type BatchCounts struct {
	// Batch is the batch id.
	Batch string
	// Succeeded and Dead count the members that succeeded and that
	// became dead letters (or were refused at the batch's enqueue);
	// Cancelled those cancelled (Client.Cancel) while being handled or
	// after.
	Succeeded, Dead, Cancelled int64
}

// BatchCounts answers the counts of the batch m completes, and false when
// m is no batch's completion.
func (m *Message) BatchCounts() (BatchCounts, bool) {
	b, ok := m.Metadata[metaBatch]
	if !ok {
		return BatchCounts{}, false
	}
	s, _ := strconv.ParseInt(m.Metadata[metaBatchSucceeded], 10, 64)
	d, _ := strconv.ParseInt(m.Metadata[metaBatchDead], 10, 64)
	c, _ := strconv.ParseInt(m.Metadata[metaBatchCancelled], 10, 64)
	return BatchCounts{Batch: b, Succeeded: s, Dead: d, Cancelled: c}, true
}

// EnqueueBatch enqueues members as one batch, and answers the batch's id
// and each member's result, in order. Once every member has finished
// (succeeded, or become a dead letter), the completion message is
// enqueued, exactly once, to its queue, carrying the members' counts
// ([Message.BatchCounts]) in its metadata (docs/protocol.md §22).
//
// The batch is written in the completion queue first, then the members.
// A member the queue refuses (its id already queued, say) is no member:
// it counts as dead at once, so that the batch still completes. On an
// error from Redis the batch may be left with members never enqueued, and
// then never completes; Inspector.Batch shows it.
//
// A Carmine worker on a member queue knows nothing of batches: its
// handling of a member ticks nothing. The member counts, as succeeded
// (Carmine's done does not tell a success from an error), when a poll of
// this library collects it, after its dedupe window if it has one, and
// within a relay's round (5 s) after that; a Carmine worker's own poll
// may collect it first, or it may have a requeue pending, and then it
// never counts and the batch never completes.
func (c *Client) EnqueueBatch(ctx context.Context, members []BatchMessage, completion BatchMessage) (string, []EnqueueResult, error) {
	if len(members) == 0 {
		return "", nil, fmt.Errorf("%w: a batch needs members", ErrInvalidOption)
	}
	b := uuid.New()
	co := EnqueueOptions{}
	if completion.Options != nil {
		co = *completion.Options
	}
	if co.MessageID == "" {
		co.MessageID = "batch-" + b + "-done"
	}
	co.UniqueFor = max(co.UniqueFor, c.cfg.HandoffWindow)
	cm, err := c.enqueueMessage(completion.Queue, completion.Message, &co)
	if err != nil {
		return "", nil, fmt.Errorf("mq: batch completion: %w", err)
	}
	ref := protocol.BatchRef(b, completion.Queue)
	byQueue := map[string][]int{}
	var order []string
	ms := make([]protocol.EnqueueMessage, len(members))
	for i, mb := range members {
		if mb.Options != nil && mb.Options.CanRequeue {
			return "", nil, fmt.Errorf("%w: batch member %d: CanRequeue", ErrInvalidOption, i)
		}
		m, err := c.enqueueMessage(mb.Queue, mb.Message, mb.Options)
		if err != nil {
			return "", nil, fmt.Errorf("batch member %d: %w", i, err)
		}
		m.Policy.Batch = ref
		ms[i] = m
		if _, ok := byQueue[mb.Queue]; !ok {
			order = append(order, mb.Queue)
		}
		byQueue[mb.Queue] = append(byQueue[mb.Queue], i)
	}
	memberKeys := make([][]string, len(order))
	for i, q := range order {
		memberKeys[i] = c.keys(q)
		if err := c.register(ctx, q); err != nil {
			return b, nil, fmt.Errorf("mq: enqueue to %q: %w", q, err)
		}
	}
	if err := c.register(ctx, completion.Queue); err != nil {
		return b, nil, fmt.Errorf("mq: enqueue to %q: %w", completion.Queue, err)
	}
	ck := c.keys(completion.Queue)
	if err := protocol.BatchCreate(ctx, c.rdb, ck, b, len(members), protocol.FollowUp{Queue: completion.Queue, Msg: cm}, memberKeys); err != nil {
		return b, nil, fmt.Errorf("mq: batch: %w", redisError(err))
	}
	results := make([]EnqueueResult, len(members))
	var errs []error
	for _, q := range order {
		idx := byQueue[q]
		var calls []protocol.EnqueueCall
		for k, i := range idx {
			if k%enqueueBatch == 0 {
				calls = append(calls, c.enqueueCall(min(enqueueBatch, len(idx)-k)))
			}
			last := &calls[len(calls)-1]
			last.Messages = append(last.Messages, ms[i])
		}
		answers := protocol.EnqueuePipelined(ctx, c.rdb, c.keys(q), calls)
		for n, a := range answers {
			for k := range calls[n].Messages {
				i := idx[n*enqueueBatch+k]
				results[i].MessageID = ms[i].ID
				if a.Err != nil {
					errs = append(errs, fmt.Errorf("mq: batch member %d (%s) to %q: %w", i, ms[i].ID, q, redisError(a.Err)))
					continue
				}
				var err error
				if results[i], err = enqueueResult(ms[i].ID, a.Codes[k]); err != nil {
					errs = append(errs, err)
					continue
				}
				if !results[i].OK() {
					// no member: counted dead, so that the batch completes
					t := protocol.MemberTick{ID: ms[i].ID + "/refused/" + b, Dead: true, Batch: b, Queue: completion.Queue}
					if _, err := protocol.BatchTick(ctx, c.rdb, ck, t, c.cfg.HandoffWindow); err != nil {
						errs = append(errs, fmt.Errorf("mq: batch member %d refused, not counted: %w", i, redisError(err)))
					}
				}
			}
		}
	}
	if _, err := c.relay(ctx, completion.Queue); err != nil { // (all refused: complete already)
		errs = append(errs, err)
	}
	return b, results, errors.Join(errs...)
}

// ErrNoBatch reports a batch its completion queue does not hold.
var ErrNoBatch = errors.New("mq: no such batch")

// BatchInfo is a batch's progress (docs/protocol.md §22).
type BatchInfo struct {
	// ID is the batch id; Queue the queue of its completion.
	ID, Queue string
	// CompletionID is the id of its completion message.
	CompletionID string
	// Members is how many members it has; Succeeded, Dead and Cancelled
	// how many of them finished so (a refused member counts as dead).
	Members, Succeeded, Dead, Cancelled int64
	// Created is when it was enqueued; Done when its last member
	// finished (the zero time while it runs).
	Created, Done time.Time
}

// Finished counts the members that finished.
func (b BatchInfo) Finished() int64 { return b.Succeeded + b.Dead + b.Cancelled }

// Batch reads the progress of batch id, whose completion goes to queue.
// A completed batch is kept for Config.HandoffWindow after it completed
// (then dropped by a later tick of the queue). An unknown batch is an
// error wrapping ErrNoBatch.
func (in *Inspector) Batch(ctx context.Context, queue, id string) (BatchInfo, error) {
	if err := ValidateQueueName(queue); err != nil {
		return BatchInfo{}, err
	}
	st, err := protocol.BatchRead(ctx, in.c.rdb, in.c.keys(queue), id)
	if err != nil {
		return BatchInfo{}, redisError(err)
	}
	if !st.Found {
		return BatchInfo{}, fmt.Errorf("mq: batch %q of queue %q: %w", id, queue, ErrNoBatch)
	}
	info := BatchInfo{ID: id, Queue: queue, CompletionID: st.Completion.Msg.ID,
		Members: st.Total, Succeeded: st.Succeeded, Dead: st.Dead, Cancelled: st.Cancelled, Created: time.UnixMilli(st.Created)}
	if st.Done > 0 {
		info.Done = time.UnixMilli(st.Done)
	}
	return info, nil
}

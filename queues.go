package mq

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
)

// QueueCounts holds a queue's counts, read in O(1) (docs/protocol.md
// §10), each message counted once. They are exact when only this library
// writes the queue, but for locks and backoffs that ran out a moment ago
// and that no poll has taken back yet (polls take them back as they fall
// due, so this lasts while no worker runs). A Carmine worker on the queue
// leaves expired entries behind, which count as locked or in backoff
// until collected, as Carmine's queue-status counts them.
type QueueCounts struct {
	// Queued is the number of messages ready for a handler now: Total
	// less Locked, Backoff and Done.
	Queued int64 `json:"queued"`
	// Locked is the number of messages locked by a handling.
	Locked int64 `json:"locked"`
	// Backoff is the number of queued messages in backoff: delayed, or
	// waiting for a retry.
	Backoff int64 `json:"backoff"`
	// Done is the number of messages handled and still kept: in their
	// dedupe window (SucceedWithBackoff), or handled by a Carmine worker
	// and not yet collected.
	Done int64 `json:"done"`
	// Total is the number of messages in the queue.
	Total int64 `json:"total"`
	// Dead is the number of dead letters (Inspector.DeadLetters), which are
	// not in Total.
	Dead int64 `json:"dead"`
	// Paused tells whether the queue is paused (PauseQueue).
	Paused bool `json:"paused"`
	// Results is the number of results kept (Message.SetResult,
	// Inspector.Result), which the worker's ResultMaxCount and
	// ResultMaxAge bound.
	Results int64 `json:"results"`
	// ReadyHigh and ReadyLow tell how the ready messages split by
	// priority (EnqueueOptions.Priority): the lengths of the queue's
	// high and low lists (docs/protocol.md §18), read in the same call.
	// They are upper bounds: an id a Carmine worker handled, or one
	// deleted, stays on its list until a poll meets it. The ready normal
	// messages are about Queued less the two.
	ReadyHigh int64 `json:"ready_high"`
	ReadyLow  int64 `json:"ready_low"`
	// HandoffsPending counts the hand-off records (follow-ups, batch
	// ticks, batch completions) waiting for a relay (docs/protocol.md
	// §22), read in the same call. Growing means no worker of the queue
	// relays.
	HandoffsPending int64 `json:"handoffs_pending"`
	// LimitSlotsHeld and LimitParked are the concurrency slots held in
	// the queue and the messages parked for want of a slot of their limit
	// key (Inspector.SetLimits, docs/protocol.md §19), read in the same
	// call; 0 for a queue without concurrency limits.
	LimitSlotsHeld int64 `json:"limit_slots_held"`
	LimitParked    int64 `json:"limit_parked"`
	// Limited is set when the queue has limits (Inspector.SetLimits);
	// Inspector.Limits reads them.
	Limited bool `json:"limited"`
}

// QueueCounts returns the queue's counts in one round trip.
func (in *Inspector) QueueCounts(ctx context.Context, queue string) (QueueCounts, error) {
	if err := ValidateQueueName(queue); err != nil {
		return QueueCounts{}, err
	}
	n, err := within(in.c, ctx, func(ctx context.Context) (protocol.Counts, error) {
		return protocol.QueueCounts(ctx, in.c.rdb, in.c.keys(queue))
	})
	if err != nil {
		return QueueCounts{}, fmt.Errorf("mq: queue counts of %q: %w", queue, redisError(err))
	}
	return QueueCounts{Queued: n.Queued, Locked: n.Locked, Backoff: n.Backoff, Done: n.Done, Total: n.Total,
		Dead: n.Dead, Paused: n.Paused, Results: n.Results, ReadyHigh: n.PrioHigh, ReadyLow: n.PrioLow,
		HandoffsPending: n.Handoffs, LimitSlotsHeld: n.SlotsHeld, LimitParked: n.Parked,
		Limited: n.Limited}, nil
}

// QueueSize returns the approximate number of messages waiting for a
// handler, in O(1): QueueCounts's Queued.
func (in *Inspector) QueueSize(ctx context.Context, queue string) (int64, error) {
	s, err := in.QueueCounts(ctx, queue)
	return s.Queued, err
}

// contentPage is how many messages QueueContent reads per round trip.
const contentPage = 500

// QueueContent returns every message in the queue, oldest first. It is
// O(n) and meant for debugging; it reads the queue page by page, so it does
// not block Redis, and a message that changes meanwhile may be missed or
// seen in a later state.
func (in *Inspector) QueueContent(ctx context.Context, queue string) ([]MessageInfo, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	var out []MessageInfo
	var cursor uint64
	for {
		var next uint64
		kvs, err := within(in.c, ctx, func(ctx context.Context) (kvs []string, err error) {
			kvs, next, err = protocol.ScanMessages(ctx, in.c.rdb, in.c.keys(queue), cursor, contentPage)
			return kvs, err
		})
		if err != nil {
			return nil, fmt.Errorf("mq: queue content of %q: %w", queue, err)
		}
		ids := make([]string, 0, len(kvs)/2)
		data := make(map[string]string, len(kvs)/2)
		for i := 0; i+1 < len(kvs); i += 2 {
			if _, dup := data[kvs[i]]; !dup {
				ids = append(ids, kvs[i])
			}
			data[kvs[i]] = kvs[i+1]
		}
		if len(ids) > 0 {
			now, reads, err := in.readMessages(ctx, queue, "", ids)
			if err != nil {
				return nil, err
			}
			for i, id := range ids {
				if m, ok := in.messageInfo(id, []byte(data[id]), reads[i], now); ok {
					out = append(out, m)
				}
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b MessageInfo) int {
		return cmp.Or(cmp.Compare(b.Age, a.Age), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// QueueNames returns the names of the queues that exist, sorted, whose
// names match the glob pattern ("" or "*" for all, read as Redis's SCAN
// MATCH reads it): the queues of the registry (docs/protocol.md §16),
// which every enqueue, worker and pause of this library writes and
// ClearQueues empties, and, merged with them, the queues found by SCAN (on
// a cluster, every master; never KEYS) that hold messages or dead letters,
// or are paused, which finds queues only Carmine's producers wrote. So a
// queue with a running worker, or that this library ever enqueued to, is
// listed, empty or not, until ClearQueues removes it.
//
// It finds only the queues of the client's own key layout (see
// [Config.Cluster]), and by SCAN only keys that are a queue's: a messages
// hash, under a name the client accepts, beside the queue's udts hash,
// which holds an entry for every message. Keys of other applications that
// merely look like a messages key are left out, and so left alone by
// ClearAllQueues.
func (in *Inspector) QueueNames(ctx context.Context, pattern string) ([]string, error) {
	if pattern == "" {
		pattern = "*"
	}
	found := map[string]bool{}
	_, err := within(in.c, ctx, func(ctx context.Context) (struct{}, error) {
		registered, err := protocol.Registered(ctx, in.c.rdb, in.c.cfg.Cluster)
		if err != nil {
			return struct{}{}, err
		}
		for _, q := range registered {
			if validQueueName(q) && keys.Match(pattern, q) {
				found[q] = true
			}
		}
		return struct{}{}, protocol.ScanQueues(ctx, in.c.rdb, in.c.cfg.Cluster, pattern, validQueueName,
			func(q string) { found[q] = true })
	})
	if err != nil {
		return nil, fmt.Errorf("mq: queue names: %w", err)
	}
	names := make([]string, 0, len(found))
	for q := range found {
		names = append(names, q)
	}
	slices.Sort(names)
	return names, nil
}

// validQueueName tells whether ValidateQueueName accepts name.
func validQueueName(name string) bool { return ValidateQueueName(name) == nil }

// ClearQueues deletes every key of the named queues, for good, takes them
// out of the registry (QueueNames), and returns the names of those that
// held anything or were registered. A worker still running on a cleared
// queue registers it again with its next heartbeat.
func (in *Inspector) ClearQueues(ctx context.Context, queues ...string) ([]string, error) {
	for _, q := range queues {
		if err := ValidateQueueName(q); err != nil {
			return nil, err
		}
	}
	return in.clear(ctx, queues)
}

// ClearAllQueues deletes every key of every queue that QueueNames finds, for
// good, and returns their names.
func (in *Inspector) ClearAllQueues(ctx context.Context) ([]string, error) {
	names, err := in.QueueNames(ctx, "*")
	if err != nil {
		return nil, err
	}
	return in.clear(ctx, names)
}

func (in *Inspector) clear(ctx context.Context, queues []string) ([]string, error) {
	// Not the cached key lists: names found by scanning need not stay in
	// the cache.
	held, err := within(in.c, ctx, func(ctx context.Context) ([]bool, error) {
		return protocol.Clear(ctx, in.c.rdb, in.c.cfg.Cluster, queues)
	})
	if err != nil {
		return nil, fmt.Errorf("mq: clear queues: %w", err)
	}
	var cleared []string
	for _, q := range queues {
		// The next enqueue, and the next beat of a worker of this
		// client, register it again.
		in.c.registered.Delete(q)
		in.c.beatRegistered.Delete(q)
	}
	for i, h := range held {
		if h {
			cleared = append(cleared, queues[i])
		}
	}
	return cleared, nil
}

package protocol

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// StatusInfo is what msg-status.lua tells of one message.
type StatusInfo struct {
	// Status is the message's status name of docs/protocol.md §2, "" for
	// a message not in the queue.
	Status string
	// Attempts is nattempts, 0 if none.
	Attempts int64
	// BackoffUntil is when its backoff ends, Unix ms, 0 if none.
	BackoffUntil int64
	// FirstEnqueued is when it was first enqueued, Unix ms, 0 if unknown.
	FirstEnqueued int64
}

// MessageStatuses answers the server's time (Unix ms) and the status of
// each message of ids, in order, in one script call.
func MessageStatuses(ctx context.Context, r Redis, keys []string, ids []string) (int64, []StatusInfo, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	reply, err := msgStatusScript.Run(ctx, r, keys, args...).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(reply) != len(ids)+1 {
		return 0, nil, fmt.Errorf("%w: message status answered %d entries for %d ids", ErrUnexpectedReply, len(reply)-1, len(ids))
	}
	now, _ := reply[0].(int64)
	infos := make([]StatusInfo, len(ids))
	for i := range ids {
		e, _ := reply[i+1].([]any)
		if len(e) != 4 {
			return 0, nil, fmt.Errorf("%w: message status entry %v", ErrUnexpectedReply, reply[i+1])
		}
		infos[i].Status, _ = e[0].(string)
		infos[i].Attempts, _ = e[1].(int64)
		infos[i].BackoffUntil, _ = e[2].(int64)
		infos[i].FirstEnqueued, _ = e[3].(int64)
	}
	return now, infos, nil
}

// Counts are a queue's counts (docs/protocol.md §10), read in O(1): exact
// when only this library writes the queue, but for entries due and not
// yet woken (counts.lua says which).
type Counts struct {
	// Total is the number of messages in the queue.
	Total int64
	// Locked is the number of lock entries.
	Locked int64
	// Backoff is the number of backoff entries less those of messages in
	// a dedupe window (which count as Done).
	Backoff int64
	// Done is the number of ids in done.
	Done int64
	// Queued is Total less Locked, Backoff and Done, at least 0.
	Queued int64
	// Dead is the number of dead letters (§11).
	Dead int64
	// Paused tells whether the queue is paused (pause.lua).
	Paused bool
}

// QueueCounts reads the queue's counts in one script call, by the formula
// that dequeue.lua's queue size uses too (counts.lua).
func QueueCounts(ctx context.Context, r Redis, keys []string) (Counts, error) {
	reply, err := countsScript.Run(ctx, r, keys).Int64Slice()
	if err != nil {
		return Counts{}, err
	}
	if len(reply) != 7 {
		return Counts{}, fmt.Errorf("%w: queue counts %v", ErrUnexpectedReply, reply)
	}
	return Counts{Total: reply[0], Locked: reply[1], Backoff: reply[2], Done: reply[3], Queued: reply[4],
		Dead: reply[5], Paused: reply[6] == 1}, nil
}

// Pause pauses the queue (pause true) or resumes it, in one script call
// (pause.lua), and answers whether its state changed.
func Pause(ctx context.Context, r Redis, keys []string, pause bool) (bool, error) {
	arg := "0"
	if pause {
		arg = "1"
	}
	n, err := pauseScript.Run(ctx, r, keys, arg).Int64()
	return n == 1, err
}

// Delete deletes the messages of ids, whatever their status, in one script
// call (delete.lua), and answers, per id, whether it was in the queue.
func Delete(ctx context.Context, r Redis, keys []string, ids []string) ([]bool, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	reply, err := deleteScript.Run(ctx, r, keys, args...).Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(reply) != len(ids) {
		return nil, fmt.Errorf("%w: delete answered %d of %d", ErrUnexpectedReply, len(reply), len(ids))
	}
	existed := make([]bool, len(ids))
	for i, n := range reply {
		existed[i] = n == 1
	}
	return existed, nil
}

// PendingRequeues answers the content of each id's pending requeue
// (messages-rq), nil where there is none, in one round trip: what a
// message shows beside its status (docs/protocol.md §3).
func PendingRequeues(ctx context.Context, r Redis, keyList []string, ids []string) ([][]byte, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	p := r.Pipeline()
	for i, id := range ids {
		cmds[i] = p.HGet(ctx, keyList[keys.MessagesRQ], id)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, cmd := range cmds {
		if b, err := cmd.Bytes(); err == nil {
			out[i] = b
		}
	}
	return out, nil
}

package mq

import (
	"context"
	"fmt"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// HistoryWindow is how far back a queue's history goes: a day, kept in
// Redis one minute at a time (docs/protocol.md §17).
const HistoryWindow = protocol.HistoryWindow

// HistoryMinute is one minute of a queue's history, as the workers of
// this library recorded it in Redis: it is there whether or not anyone
// watched, and every process reads the same. It marshals to JSON.
type HistoryMinute struct {
	// Start is when the minute began, by the Redis server's clock.
	Start time.Time `json:"start"`
	// Processed counts the handlings whose outcome was recorded in the
	// minute: OutcomeSucceeded, OutcomeRetried, OutcomeFailed and
	// OutcomeDead. Handlings abandoned or whose lock was lost, and
	// messages released unhandled, are not counted.
	Processed int64 `json:"processed"`
	// Failed counts those of them that did not succeed: OutcomeRetried,
	// OutcomeFailed and OutcomeDead.
	Failed int64 `json:"failed"`
	// Dead counts the dead letters written in the minute: handlings that
	// failed for good, and messages quarantined (OutcomeQuarantined).
	Dead int64 `json:"dead"`
}

// Succeeded is the minute's handlings that succeeded: Processed less
// Failed.
func (m HistoryMinute) Succeeded() int64 { return m.Processed - m.Failed }

// History returns the queue's history from the minute that holds since
// to the current one, oldest first, one entry a minute (zero counts for a
// minute with none), by the Redis server's clock; a since before
// HistoryWindow ago (the zero time, say) starts a day ago, one later than
// now answers the current minute. It costs one script call, which reads
// one hash field per minute and kind. The workers write it as they record
// outcomes, at a cost of one command per poll call that records any (a
// few more once a minute, or with failures); a Carmine worker's outcomes
// are not counted.
func (in *Inspector) History(ctx context.Context, queue string, since time.Time) ([]HistoryMinute, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	var ms int64
	if !since.IsZero() {
		ms = since.UnixMilli()
	}
	return in.history(ctx, queue, func(ctx context.Context, keys []string) ([]protocol.HistoryMinute, int64, error) {
		return protocol.History(ctx, in.c.rdb, keys, ms)
	})
}

// RecentHistory returns the queue's last d of history (rounded up to
// whole minutes, at most HistoryWindow), the current minute last, by the
// Redis server's clock whatever this machine's says, reading only those
// minutes: what a dashboard refreshing every few seconds should call.
// A d of 0 or less is an error.
func (in *Inspector) RecentHistory(ctx context.Context, queue string, d time.Duration) ([]HistoryMinute, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	if d <= 0 {
		return nil, fmt.Errorf("%w: history of %v", ErrInvalidOption, d)
	}
	n := int((min(d, HistoryWindow) + time.Minute - 1) / time.Minute)
	return in.history(ctx, queue, func(ctx context.Context, keys []string) ([]protocol.HistoryMinute, int64, error) {
		return protocol.HistoryLast(ctx, in.c.rdb, keys, n)
	})
}

// history runs read within the client's bounds and converts its minutes.
func (in *Inspector) history(ctx context.Context, queue string,
	read func(context.Context, []string) ([]protocol.HistoryMinute, int64, error)) ([]HistoryMinute, error) {
	raw, err := within(in.c, ctx, func(ctx context.Context) ([]protocol.HistoryMinute, error) {
		h, _, err := read(ctx, in.c.keys(queue))
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("mq: history of %q: %w", queue, redisError(err))
	}
	out := make([]HistoryMinute, len(raw))
	for i, m := range raw {
		out[i] = HistoryMinute{Start: time.UnixMilli(m.Start), Processed: m.Processed, Failed: m.Failed, Dead: m.Dead}
	}
	return out, nil
}

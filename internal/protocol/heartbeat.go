package protocol

import (
	"context"
	"fmt"
	"time"
)

// Bounds of heartbeat.lua's work per call (docs/protocol.md §12).
const (
	// HeartbeatPrune is how many expired entries one call removes at most.
	HeartbeatPrune = 100
	// HeartbeatList is how many live entries a listing answers at most.
	HeartbeatList = 10000
)

// WorkerEntry is one live worker as the queue's workers keys hold it.
type WorkerEntry struct {
	// ID is the worker's id.
	ID string
	// Expires is when its heartbeat runs out, Unix ms (server time).
	Expires int64
	// Info is what the worker said of itself in its last beat (JSON);
	// nil if the entry has none.
	Info []byte
}

// Heartbeat records one beat of worker id in one script call
// (heartbeat.lua): its entry lives ttl from the server's now, with info.
// It answers the server's time, Unix ms.
func Heartbeat(ctx context.Context, r Redis, keys []string, id string, ttl time.Duration, info []byte) (int64, error) {
	return heartbeatScript.Run(ctx, r, keys, "beat", id, MS(ttl), info, HeartbeatPrune).Int64()
}

// LiveWorkers answers the server's time (Unix ms) and the queue's live
// workers, by expiry, in one script call (heartbeat.lua), which prunes
// expired entries first.
func LiveWorkers(ctx context.Context, r Redis, keys []string) (int64, []WorkerEntry, error) {
	reply, err := heartbeatScript.Run(ctx, r, keys, "list", HeartbeatPrune, HeartbeatList).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(reply) == 0 || (len(reply)-1)%3 != 0 {
		return 0, nil, fmt.Errorf("%w: live workers answered %d entries", ErrUnexpectedReply, len(reply))
	}
	now, ok := reply[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("%w: live workers time %v", ErrUnexpectedReply, reply[0])
	}
	entries := make([]WorkerEntry, 0, (len(reply)-1)/3)
	for i := 1; i < len(reply); i += 3 {
		id, ok1 := reply[i].(string)
		expires, ok2 := reply[i+1].(int64)
		if !ok1 || !ok2 {
			return 0, nil, fmt.Errorf("%w: live worker entry %v %v", ErrUnexpectedReply, reply[i], reply[i+1])
		}
		e := WorkerEntry{ID: id, Expires: expires}
		if info, ok := reply[i+2].(string); ok {
			e.Info = []byte(info)
		}
		entries = append(entries, e)
	}
	return now, entries, nil
}

// WorkerGone removes worker id's entry at once (heartbeat.lua), as a
// graceful stop does, and answers whether it was there.
func WorkerGone(ctx context.Context, r Redis, keys []string, id string) (bool, error) {
	n, err := heartbeatScript.Run(ctx, r, keys, "gone", id).Int64()
	return n == 1, err
}

package protocol

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// HistoryWindow is how far back a queue's history goes (docs/protocol.md
// §17): a day, in minutes.
const HistoryWindow = 24 * time.Hour

// HistoryMinute is one minute of a queue's history (§17).
type HistoryMinute struct {
	// Start is when the minute began, Unix ms by the server's clock.
	Start int64
	// Processed counts the handlings recorded with an outcome (success,
	// retry or dead); Failed those of them that failed (retry or dead);
	// Dead the dead letters written (dead or quarantined).
	Processed, Failed, Dead int64
}

// History answers the queue's minutes from the one holding since (Unix
// ms; any value before the window starts at its oldest minute) to the
// server's current minute, oldest first, and the server's time (Unix ms).
func History(ctx context.Context, r Redis, keys []string, since int64) ([]HistoryMinute, int64, error) {
	return history(ctx, r, keys, strconv.FormatInt(max(0, since), 10))
}

// HistoryLast answers the queue's last n minutes (at least 1, at most
// the window) by the server's clock, the current one last, and the
// server's time (Unix ms).
func HistoryLast(ctx context.Context, r Redis, keys []string, n int) ([]HistoryMinute, int64, error) {
	return history(ctx, r, keys, "0", strconv.Itoa(max(1, n)))
}

func history(ctx context.Context, r Redis, keys []string, args ...any) ([]HistoryMinute, int64, error) {
	reply, err := historyScript.Run(ctx, r, keys, args...).Int64Slice()
	if err != nil {
		return nil, 0, err
	}
	if len(reply) < 2 || (len(reply)-2)%3 != 0 {
		return nil, 0, fmt.Errorf("%w: history of %d values", ErrUnexpectedReply, len(reply))
	}
	now, first := reply[0], reply[1]
	out := make([]HistoryMinute, 0, (len(reply)-2)/3)
	for i := 2; i+2 < len(reply); i += 3 {
		out = append(out, HistoryMinute{Start: (first + int64(len(out))) * 60000,
			Processed: reply[i], Failed: reply[i+1], Dead: reply[i+2]})
	}
	return out, now, nil
}

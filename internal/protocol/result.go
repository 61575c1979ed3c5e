package protocol

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// ResultRecord is what result.lua answers of one message (§21).
type ResultRecord struct {
	// Found tells whether a result of the message is kept (and not one of
	// an earlier message of the same id while this one is pending).
	Found bool
	// Data is the result's bytes, At when its success was recorded (ms,
	// by the server's clock).
	Data []byte
	At   int64
	// Pending tells whether the message is still to be handled: queued,
	// locked, or done with a requeue pending.
	Pending bool
}

// ReadResult reads the result of message id (result.lua).
func ReadResult(ctx context.Context, r Redis, keys []string, id string) (ResultRecord, error) {
	raw, err := resultScript.Run(ctx, r, keys, id).Slice()
	if err != nil {
		return ResultRecord{}, err
	}
	if len(raw) != 2 {
		return ResultRecord{}, fmt.Errorf("%w: result reply %v", ErrUnexpectedReply, raw)
	}
	stored, ok1 := raw[0].(string)
	pending, ok2 := raw[1].(int64)
	if !ok1 || !ok2 {
		return ResultRecord{}, fmt.Errorf("%w: result reply %v", ErrUnexpectedReply, raw)
	}
	rec := ResultRecord{Pending: pending == 1}
	if stored == "" {
		return rec, nil
	}
	at, data, ok := strings.Cut(stored, ":")
	ms, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return ResultRecord{}, fmt.Errorf("%w: stored result %.40q", ErrUnexpectedReply, stored)
	}
	rec.Found, rec.At, rec.Data = true, ms, []byte(data)
	return rec, nil
}

package mq

import (
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// AttemptError is the error of one failed attempt of a message. A message
// keeps the errors of its latest five failed attempts in Redis while it is
// in the queue (each cut to 1 KiB), and its dead letter keeps them, the
// last attempt's among them (docs/protocol.md §17). An attempt whose
// handler asked for a retry without failing (Retry) leaves none.
type AttemptError struct {
	// Attempt is the attempt's number, from 1 (Message.Attempt).
	Attempt int64 `json:"attempt"`
	// At is when its outcome was recorded, by the Redis server's clock.
	At time.Time `json:"at"`
	// Error is the handler's error text.
	Error string `json:"error"`
}

// attemptErrors is rs as the public type, nil for none.
func attemptErrors(rs []protocol.AttemptError) []AttemptError {
	if len(rs) == 0 {
		return nil
	}
	out := make([]AttemptError, len(rs))
	for i, r := range rs {
		out[i] = AttemptError{Attempt: r.Attempt, At: time.UnixMilli(r.At), Error: r.Error}
	}
	return out
}

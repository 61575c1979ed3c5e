package mq

import (
	"context"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Progress is the latest progress a handler reported of its message
// (docs/protocol.md §20).
type Progress struct {
	// N is the number the handler gave: a count, a percentage, as it
	// likes.
	N float64 `json:"n"`
	// Note is the short note it gave (cut to 256 bytes).
	Note string `json:"note,omitempty"`
	// At is when Redis stored it, by the server's clock: at the renewal
	// after the report, or at once with ProgressNow.
	At time.Time `json:"at"`
}

// Progress reports the handling's progress: a number and a short note
// (cut to 256 bytes). It is kept here and stored with the message at the
// next lock renewal the worker makes anyway (every third of the lock
// time), costing no call of its own; only the latest report is sent. Any
// process reads it with Inspector.Message until the message is done. With
// WorkerConfig.NoLockRenewal, use ProgressNow.
func (m *Message) Progress(n float64, note string) {
	if m.lock != nil {
		m.lock.SetProgress(protocol.EncodeProgress(n, note))
	}
}

// ProgressNow reports the handling's progress as Progress does, and stores
// it at once, with a renewal of the message's lock (as ExtendLock). It
// answers ExtendLock's errors.
func (m *Message) ProgressNow(ctx context.Context, n float64, note string) error {
	m.Progress(n, note)
	return m.ExtendLock(ctx)
}

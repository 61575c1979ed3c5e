package mq

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// The retry policy's defaults (WorkerConfig).
const (
	// DefaultMaxAttempts is how many times a failing message is handed
	// out before it becomes a dead letter.
	DefaultMaxAttempts = 10
	// DefaultQuarantineAfter is how many hand-outs without any outcome
	// (their handlers' processes died) make a message a dead letter.
	DefaultQuarantineAfter = 5
	// DefaultDeadLetterMaxCount is how many dead letters a queue keeps.
	DefaultDeadLetterMaxCount = 10_000
	// DefaultDeadLetterMaxAge is how long a queue keeps a dead letter.
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
)

// maxErrorText bounds the error text kept in a dead letter;
// maxAttemptErrorText the text of each earlier attempt's error, which the
// scripts keep with the message (the last few, docs/protocol.md §17) and
// cut to that length anyway.
const (
	maxErrorText        = 4 << 10
	maxAttemptErrorText = 1 << 10
)

// cutErrorText is err's text cut to n bytes, as valid UTF-8.
func cutErrorText(err error, n int) string {
	s := err.Error()
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// DefaultRetryBackoff is the default wait before the next attempt after a
// failed attempt n (from 1): 1 s doubled per attempt up to 1 h, less a
// random part of up to half, so that messages that failed together are
// retried apart. With DefaultMaxAttempts a message fails for good about
// 9-17 minutes after its first attempt.
func DefaultRetryBackoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 13 {
		d = min(d, time.Second<<max(0, attempt-1))
	}
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}

// applyRetryPolicy turns the outcome of a failed attempt into a retry
// after the policy's backoff, or into a dead letter after the last
// attempt (or when the error is final), and logs it. The policy is the
// message's own where it sets one (p, nil for none; docs/protocol.md
// §14), else the worker's; a dead letter of a message with a dedupe
// window keeps it.
func (w *Worker) applyRetryPolicy(c *protocol.Completion, attempt int64, err error, p *protocol.Policy) {
	log := w.messageLog(c.ID, attempt)
	maxAttempts := w.maxAttempts(p)
	last := maxAttempts > 0 && attempt >= int64(maxAttempts)
	if c.Outcome == protocol.OutcomeDead || last {
		c.Outcome, c.Backoff = protocol.OutcomeDead, 0
		if p != nil {
			c.Backoff = p.UniqueFor
		}
		c.Error = cutErrorText(err, maxErrorText)
		log.Error("mq: handler failed for good; the message is a dead letter", slog.Any("error", err))
		return
	}
	if p != nil && p.Backoff.Kind != "" {
		b := publicPolicy(p).Backoff
		c.Backoff = b.Delay(int(attempt))
	} else {
		c.Backoff = max(0, w.cfg.RetryBackoff(int(attempt)))
	}
	c.Error = cutErrorText(err, maxAttemptErrorText)
	log.Warn("mq: handler failed; the message will be retried", slog.Any("error", err),
		slog.Duration("retry_in", c.Backoff))
}

// maxAttempts is the retry bound of a message with policy p (nil for
// none): its own when it sets one, else the worker's.
func (w *Worker) maxAttempts(p *protocol.Policy) int {
	if p != nil && p.MaxAttempts != 0 {
		return p.MaxAttempts
	}
	return w.cfg.MaxAttempts
}

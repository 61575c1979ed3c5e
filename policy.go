package mq

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Policy is a message's own policy, set at enqueue (EnqueueOptions
// MaxAttempts, Backoff, Timeout and UniqueFor) and kept beside the message
// in Redis (docs/protocol.md §14). A zero field leaves the worker's
// setting. A Carmine worker on the same queue ignores it.
type Policy struct {
	// MaxAttempts bounds the hand-outs of a failing message, as
	// WorkerConfig.MaxAttempts does (negative: no bound), instead of the
	// worker's.
	MaxAttempts int
	// Backoff is the wait before a retry after a failure, instead of
	// WorkerConfig.RetryBackoff; nil for the worker's.
	Backoff *RetryBackoff
	// Timeout ends the handler's context (cause ErrHandlingTimeout) that
	// long after the handling began, however its lock is renewed; the
	// handling has then failed, whatever the handler answers, and is
	// retried or buried by the policy.
	Timeout time.Duration
	// UniqueFor is the dedupe window: while the message is queued or
	// handled, and for UniqueFor after its success (or after it became a
	// dead letter), an enqueue of its id with a UniqueFor is refused with
	// ErrDuplicate.
	UniqueFor time.Duration
}

// BackoffKind names the shape of a [RetryBackoff].
type BackoffKind string

// The kinds of retry backoff a message may carry.
const (
	// BackoffFixed waits Base before every retry.
	BackoffFixed BackoffKind = "fixed"
	// BackoffExponential waits Base after the first failure, doubled
	// after each one, up to Max.
	BackoffExponential BackoffKind = "exp"
)

// RetryBackoff is a retry backoff that travels with a message (a function,
// as WorkerConfig.RetryBackoff takes, cannot be stored in Redis).
type RetryBackoff struct {
	// Kind is BackoffFixed or BackoffExponential.
	Kind BackoffKind
	// Base is the wait after the first failure (every failure, fixed).
	Base time.Duration
	// Max caps an exponential backoff; 0 for no cap.
	Max time.Duration
	// Jitter, from 0 to 1, is the part of each wait taken off at random,
	// so that messages that failed together are retried apart.
	Jitter float64
}

// Delay is the wait before the retry after failed attempt n (from 1).
func (b RetryBackoff) Delay(attempt int) time.Duration {
	d := b.Base
	if b.Kind == BackoffExponential {
		for i := 1; i < attempt && (b.Max <= 0 || d < b.Max) && d < time.Duration(1)<<52; i++ {
			d *= 2
		}
		if b.Max > 0 {
			d = min(d, b.Max)
		}
	}
	if b.Jitter > 0 && d > 0 {
		d -= time.Duration(rand.Int64N(int64(float64(d)*min(b.Jitter, 1)) + 1))
	}
	return max(0, d)
}

// hasPolicy tells whether o sets any field of a message's own policy.
func (o *EnqueueOptions) hasPolicy() bool {
	return o.MaxAttempts != 0 || o.Backoff != nil || o.Timeout != 0 || o.UniqueFor != 0
}

// policyOf checks the policy fields of o and answers them as the protocol
// stores them.
func policyOf(o *EnqueueOptions) (protocol.Policy, error) {
	if !o.hasPolicy() {
		return protocol.Policy{}, nil
	}
	if o.CanRequeue {
		// A requeue becomes the message when the one before is done with,
		// and carries no policy of its own (§14).
		return protocol.Policy{}, fmt.Errorf("%w: CanRequeue with a message policy (MaxAttempts, Backoff, Timeout, UniqueFor)", ErrInvalidOption)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"Timeout", o.Timeout}, {"UniqueFor", o.UniqueFor}} {
		if err := nonNegative(d.name, d.d); err != nil {
			return protocol.Policy{}, err
		}
	}
	p := protocol.Policy{MaxAttempts: o.MaxAttempts, Timeout: o.Timeout, UniqueFor: o.UniqueFor}
	if b := o.Backoff; b != nil {
		if b.Kind != BackoffFixed && b.Kind != BackoffExponential {
			return protocol.Policy{}, fmt.Errorf("%w: Backoff.Kind %q is neither fixed nor exp", ErrInvalidOption, b.Kind)
		}
		if b.Base < 0 || b.Max < 0 || b.Jitter < 0 || b.Jitter > 1 || b.Jitter != b.Jitter {
			return protocol.Policy{}, fmt.Errorf("%w: Backoff %+v: Base and Max may not be negative, Jitter is from 0 to 1", ErrInvalidOption, *b)
		}
		p.Backoff = protocol.BackoffSpec{Kind: string(b.Kind), Base: b.Base, Max: b.Max, Jitter: b.Jitter}
	}
	return p, nil
}

// publicPolicy answers the policy a handed-out message, a dead letter or a
// message's status carries, nil for none.
func publicPolicy(p *protocol.Policy) *Policy {
	if p == nil {
		return nil
	}
	q := *p
	if q.Batch = ""; q.IsZero() { // (a batch is no policy of its own)
		return nil
	}
	out := &Policy{MaxAttempts: p.MaxAttempts, Timeout: p.Timeout, UniqueFor: p.UniqueFor}
	if p.Backoff.Kind != "" {
		out.Backoff = &RetryBackoff{Kind: BackoffKind(p.Backoff.Kind), Base: p.Backoff.Base, Max: p.Backoff.Max, Jitter: p.Backoff.Jitter}
	}
	return out
}

// String describes the policy in a few words, as mqctl and the dashboard
// show it, e.g. "max attempts 3, backoff exp 1s..1m0s jitter 0.5, timeout
// 30s, unique for 1h0m0s".
func (p Policy) String() string {
	var parts []string
	if p.MaxAttempts > 0 {
		parts = append(parts, fmt.Sprintf("max attempts %d", p.MaxAttempts))
	} else if p.MaxAttempts < 0 {
		parts = append(parts, "max attempts unbounded")
	}
	if b := p.Backoff; b != nil {
		s := fmt.Sprintf("backoff %s %v", b.Kind, b.Base)
		if b.Kind == BackoffExponential && b.Max > 0 {
			s += fmt.Sprintf("..%v", b.Max)
		}
		if b.Jitter > 0 {
			s += fmt.Sprintf(" jitter %g", b.Jitter)
		}
		parts = append(parts, s)
	}
	if p.Timeout > 0 {
		parts = append(parts, fmt.Sprintf("timeout %v", p.Timeout))
	}
	if p.UniqueFor > 0 {
		parts = append(parts, fmt.Sprintf("unique for %v", p.UniqueFor))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

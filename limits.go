package mq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Limits are a queue's limits across every worker of this library, in
// every process, enforced by the poll on the Redis server's clock
// (docs/protocol.md §19). The zero value sets none. A Carmine worker on
// the same queue ignores them.
type Limits struct {
	// Rate bounds the hand-outs of the whole queue. Zero: none.
	Rate Rate `json:"rate"`
	// KeyRate bounds the hand-outs of each limit key
	// (EnqueueOptions.LimitKey); messages without a key are bound by
	// Rate alone. Zero: none.
	KeyRate Rate `json:"key_rate"`
	// Concurrency bounds the messages handled at once in the whole queue:
	// each hand-out takes a slot until its outcome, or until its lock
	// runs out when its process died. 0: none.
	Concurrency int `json:"concurrency"`
	// KeyConcurrency bounds the messages of one limit key handled at
	// once; a message refused for want of a slot of its key is parked
	// until one is freed (first parked, first out). 0: none.
	KeyConcurrency int `json:"key_concurrency"`
}

// Rate is a rate limit: at most N hand-outs per Per, in any window of
// length Per, and Burst more at once after a quiet time (GCRA: one token
// every Per/N, up to Burst saved). The zero Rate is no limit.
type Rate struct {
	N     int           `json:"n"`
	Per   time.Duration `json:"per"`
	Burst int           `json:"burst"`
}

// IsZero tells whether the rate sets no limit.
func (r Rate) IsZero() bool { return r == Rate{} }

// String spells the rate as "100/1s" (with "+5" for a burst of 5), the
// form ParseRate reads; "none" for the zero Rate.
func (r Rate) String() string {
	if r.IsZero() {
		return "none"
	}
	s := strconv.Itoa(r.N) + "/" + r.Per.String()
	if r.Burst > 0 {
		s += "+" + strconv.Itoa(r.Burst)
	}
	return s
}

// ParseRate reads a rate as Rate.String writes it: "100/1s", "5/1m+10";
// "none" or "" for no limit.
func ParseRate(s string) (Rate, error) {
	if s == "" || s == "none" {
		return Rate{}, nil
	}
	var r Rate
	rest, burst, hasBurst := strings.Cut(s, "+")
	n, per, ok := strings.Cut(rest, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w: rate %q is not N/period[+burst]", ErrInvalidOption, s)
	}
	var err error
	if r.N, err = strconv.Atoi(n); err != nil {
		return Rate{}, fmt.Errorf("%w: rate %q: %v", ErrInvalidOption, s, err)
	}
	if r.Per, err = time.ParseDuration(per); err != nil {
		return Rate{}, fmt.Errorf("%w: rate %q: %v", ErrInvalidOption, s, err)
	}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(burst); err != nil {
			return Rate{}, fmt.Errorf("%w: rate %q: %v", ErrInvalidOption, s, err)
		}
	}
	return r, r.validate("rate")
}

// The bounds of a limit's values.
const (
	maxLimitN  = 1_000_000
	maxRatePer = 365 * 24 * time.Hour
)

// MaxLimitKeyLength is the longest EnqueueOptions.LimitKey, in bytes.
const MaxLimitKeyLength = 256

func (r Rate) validate(name string) error {
	if r.IsZero() {
		return nil
	}
	switch {
	case r.N <= 0 || r.N > maxLimitN:
		return fmt.Errorf("%w: %s: N %d is not between 1 and %d", ErrInvalidOption, name, r.N, maxLimitN)
	case r.Per < time.Millisecond || r.Per > maxRatePer:
		return fmt.Errorf("%w: %s: Per %v is not between 1ms and %v", ErrInvalidOption, name, r.Per, maxRatePer)
	case r.Per%time.Millisecond != 0:
		return fmt.Errorf("%w: %s: Per %v is not a whole number of milliseconds", ErrInvalidOption, name, r.Per)
	case r.Burst < 0 || r.Burst > maxLimitN:
		return fmt.Errorf("%w: %s: Burst %d is not between 0 and %d", ErrInvalidOption, name, r.Burst, maxLimitN)
	}
	return nil
}

// Validate answers an error wrapping ErrInvalidOption for limits out of
// range, nil otherwise.
func (l Limits) Validate() error {
	if err := l.Rate.validate("Rate"); err != nil {
		return err
	}
	if err := l.KeyRate.validate("KeyRate"); err != nil {
		return err
	}
	if l.Concurrency < 0 || l.Concurrency > maxLimitN {
		return fmt.Errorf("%w: Concurrency %d is not between 0 and %d", ErrInvalidOption, l.Concurrency, maxLimitN)
	}
	if l.KeyConcurrency < 0 || l.KeyConcurrency > maxLimitN {
		return fmt.Errorf("%w: KeyConcurrency %d is not between 0 and %d", ErrInvalidOption, l.KeyConcurrency, maxLimitN)
	}
	return nil
}

// validateLimitKey checks EnqueueOptions.LimitKey.
func validateLimitKey(k string) error {
	if len(k) > MaxLimitKeyLength {
		return fmt.Errorf("%w: LimitKey is %d bytes, the limit is %d", ErrInvalidOption, len(k), MaxLimitKeyLength)
	}
	if strings.ContainsRune(k, 0) {
		return fmt.Errorf("%w: LimitKey holds a NUL byte", ErrInvalidOption)
	}
	return nil
}

func (r Rate) arg() string {
	if r.IsZero() {
		return ""
	}
	return protocol.RateArg(int64(r.N), r.Per.Milliseconds(), int64(r.Burst))
}

func countArg(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func rateOf(s string) Rate {
	var n, per, burst int64
	if _, err := fmt.Sscanf(s, "%d %d %d", &n, &per, &burst); err != nil {
		return Rate{}
	}
	return Rate{N: int(n), Per: time.Duration(per) * time.Millisecond, Burst: int(burst)}
}

// LimitState is a queue's limits and how much of them is in use.
type LimitState struct {
	Limits Limits `json:"limits"`
	// SlotsHeld is the number of concurrency slots held now: messages
	// handed out under a concurrency limit and not yet ended.
	SlotsHeld int64 `json:"slots_held"`
	// Parked is the number of messages parked for want of a slot of their
	// limit key.
	Parked int64 `json:"parked"`
}

// SetLimits sets queue's limits for every worker of this library, from
// their next poll on (a sleeping worker is woken). The zero Limits clears
// them (see ClearLimits). Parked messages go back to be handed out, so
// that a raised or lifted limit lets them go at once. Limits out of range
// are refused with an error wrapping ErrInvalidOption before anything is
// written.
func (in *Inspector) SetLimits(ctx context.Context, queue string, l Limits) error {
	if err := ValidateQueueName(queue); err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return fmt.Errorf("mq: set limits of %q: %w", queue, err)
	}
	_, err := within(in.c, ctx, func(ctx context.Context) (int64, error) {
		return protocol.SetLimits(ctx, in.c.rdb, in.c.keys(queue), protocol.Limits{
			Rate: l.Rate.arg(), KeyRate: l.KeyRate.arg(),
			Concurrency: countArg(l.Concurrency), KeyConcurrency: countArg(l.KeyConcurrency),
		})
	})
	if err != nil {
		return fmt.Errorf("mq: set limits of %q: %w", queue, redisError(err))
	}
	return nil
}

// ClearLimits removes queue's limits: SetLimits with the zero Limits.
func (in *Inspector) ClearLimits(ctx context.Context, queue string) error {
	return in.SetLimits(ctx, queue, Limits{})
}

// Limits reads queue's limits and their use (one round trip).
func (in *Inspector) Limits(ctx context.Context, queue string) (LimitState, error) {
	if err := ValidateQueueName(queue); err != nil {
		return LimitState{}, err
	}
	st, err := within(in.c, ctx, func(ctx context.Context) (protocol.LimitState, error) {
		return protocol.ReadLimits(ctx, in.c.rdb, in.c.keys(queue))
	})
	if err != nil {
		return LimitState{}, fmt.Errorf("mq: limits of %q: %w", queue, redisError(err))
	}
	conc, _ := strconv.Atoi(st.Limits.Concurrency)
	keyConc, _ := strconv.Atoi(st.Limits.KeyConcurrency)
	return LimitState{
		Limits: Limits{Rate: rateOf(st.Limits.Rate), KeyRate: rateOf(st.Limits.KeyRate),
			Concurrency: conc, KeyConcurrency: keyConc},
		SlotsHeld: st.SlotsHeld, Parked: st.Parked,
	}, nil
}

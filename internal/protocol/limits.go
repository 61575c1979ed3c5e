package protocol

import (
	"context"
	"strconv"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// Limits are a queue's limits as the limits hash holds them (§19): each
// rate "<n> <period ms> <burst>", each concurrency "<n>", "" for none.
type Limits struct {
	Rate, KeyRate               string
	Concurrency, KeyConcurrency string
}

// RateArg spells a rate of n per periodMS with burst as the scripts read it.
func RateArg(n, periodMS, burst int64) string {
	return strconv.FormatInt(n, 10) + " " + strconv.FormatInt(periodMS, 10) + " " + strconv.FormatInt(burst, 10)
}

// SetLimits writes the queue's limits (limits-set.lua): every field ""
// clears them. Parked ids go back to be handed out. It answers how many.
func SetLimits(ctx context.Context, r Redis, keys []string, l Limits) (int64, error) {
	return limitsSetScript.Run(ctx, r, keys, l.Rate, l.KeyRate, l.Concurrency, l.KeyConcurrency).Int64()
}

// LimitState is a queue's limits and their use, read by ReadLimits.
type LimitState struct {
	Limits Limits
	// SlotsHeld is the number of concurrency slots held (slot-counts "q").
	SlotsHeld int64
	// Parked is the number of parked ids.
	Parked int64
}

// ReadLimits reads the queue's limits and their use in one round trip.
func ReadLimits(ctx context.Context, r redis.Cmdable, ks []string) (LimitState, error) {
	var fields *redis.SliceCmd
	var held *redis.StringCmd
	var parked *redis.IntCmd
	_, err := r.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HMGet(ctx, ks[keys.Limits], "rate", "key-rate", "conc", "key-conc")
		held = p.HGet(ctx, ks[keys.SlotCounts], "q")
		parked = p.ZCard(ctx, ks[keys.Parked])
		return nil
	})
	if err != nil && err != redis.Nil {
		return LimitState{}, err
	}
	var st LimitState
	v := fields.Val()
	str := func(i int) string {
		if i < len(v) {
			if s, ok := v[i].(string); ok {
				return s
			}
		}
		return ""
	}
	st.Limits = Limits{Rate: str(0), KeyRate: str(1), Concurrency: str(2), KeyConcurrency: str(3)}
	st.SlotsHeld, _ = strconv.ParseInt(held.Val(), 10, 64)
	st.Parked = parked.Val()
	return st, nil
}

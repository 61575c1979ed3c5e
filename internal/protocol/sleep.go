package protocol

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// The sleeps of docs/protocol.md §5: the commands a sleeping worker, or
// the sleep hub that sleeps for the workers of one client, sends. They are
// plain list commands, not scripts, because a blocking command cannot run
// inside one.

// Sleeper is what the sleeps need of a Redis client: a
// redis.UniversalClient is one.
type Sleeper interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
	BLMove(ctx context.Context, source, destination, srcpos, destpos string, timeout time.Duration) *redis.StringCmd
	BLMPop(ctx context.Context, timeout time.Duration, direction string, count int64, keys ...string) *redis.KeyValuesCmd
	RPopLPush(ctx context.Context, source, destination string) *redis.StringCmd
	LPush(ctx context.Context, key string, values ...any) *redis.IntCmd
	RPush(ctx context.Context, key string, values ...any) *redis.IntCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	LLen(ctx context.Context, key string) *redis.IntCmd
}

// SleepLists answers the lists a sleep step blocks on (from, where the
// sentinel arrives) and moves the sentinel to (to), among the queue's
// keys: the empty isleep list and the other one, or for a paused queue's
// sleep the resumed list, on which a blocking move rotates.
func SleepLists(ks []string, s *Step) (from, to string) {
	switch s.SleepList {
	case "b":
		return ks[keys.ISleepB], ks[keys.ISleepA]
	case "resumed":
		return ks[keys.Resumed], ks[keys.Resumed]
	}
	return ks[keys.ISleepA], ks[keys.ISleepB]
}

// BlockingMove moves an element from the right of list from to the left of
// to, waiting up to d (at least 1 ms) for one to arrive, and answers
// whether one did. Below a second the timeout goes as a fraction, which
// go-redis's BLMove does not send; the read then has the client's
// ReadTimeout, above any fraction of a second.
func BlockingMove(ctx context.Context, r Sleeper, from, to string, d time.Duration) (bool, error) {
	if d >= time.Second {
		// Whole seconds: go-redis then reads for the timeout plus its own
		// margin, so the read never times out before Redis answers.
		return moved(r.BLMove(ctx, from, to, "RIGHT", "LEFT", d.Truncate(time.Second)).Err())
	}
	secs := strconv.FormatFloat(max(d, time.Millisecond).Seconds(), 'f', 3, 64)
	return moved(r.Do(ctx, "blmove", from, to, "RIGHT", "LEFT", secs).Err())
}

func moved(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	}
	return false, err
}

// Nudge moves the sentinel from one list to the other, which wakes a
// sleeper blocked on the other.
func Nudge(ctx context.Context, r Sleeper, from, to string) error {
	err := r.RPopLPush(ctx, from, to).Err()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// HasReady tells whether the queue's mids-ready holds anything.
func HasReady(ctx context.Context, r Sleeper, ks []string) (bool, error) {
	n, err := r.LLen(ctx, ks[keys.MidsReady]).Result()
	return n > 0, err
}

// HubPop is the sleep hub's one blocking call: it pops the rightmost
// element of the first of lists to hold one, waiting up to d, and answers
// the list and the element, or ok false when d passed first.
func HubPop(ctx context.Context, r Sleeper, d time.Duration, lists []string) (list, element string, ok bool, err error) {
	var es []string
	if d >= time.Second {
		// Whole seconds: go-redis then reads for the timeout plus its own
		// margin, whatever the client's ReadTimeout.
		list, es, err = r.BLMPop(ctx, d.Truncate(time.Second), "right", 1, lists...).Result()
	} else {
		// A fraction of a second, which go-redis's BLMPop does not send;
		// the read has the client's ReadTimeout.
		args := make([]any, 0, 5+len(lists))
		args = append(args, "blmpop", strconv.FormatFloat(max(d, time.Millisecond).Seconds(), 'f', 3, 64), len(lists))
		for _, l := range lists {
			args = append(args, l)
		}
		args = append(args, "right", "count", 1)
		var raw []any
		raw, err = r.Do(ctx, args...).Slice()
		if err == nil {
			// [list, [element]]
			if len(raw) != 2 {
				return "", "", false, ErrUnexpectedReply
			}
			list, _ = raw[0].(string)
			popped, _ := raw[1].([]any)
			for _, e := range popped {
				s, _ := e.(string)
				es = append(es, s)
			}
		}
	}
	switch {
	case errors.Is(err, redis.Nil):
		return "", "", false, nil
	case err != nil:
		return "", "", false, err
	case len(es) != 1:
		return "", "", false, ErrUnexpectedReply
	}
	return list, es[0], true, nil
}

// HubPut pushes an element the hub popped: to the left of the list it
// moves the sentinel to, as a sleeper's blocking move would, or back to
// the right of the list it came from (back).
func HubPut(ctx context.Context, r Sleeper, list, element string, back bool) error {
	if back {
		return r.RPush(ctx, list, element).Err()
	}
	return r.LPush(ctx, list, element).Err()
}

// HubKick pushes to the hub's own list, which its call watches too, so
// that the call returns and the hub calls again with new lists.
func HubKick(ctx context.Context, r Sleeper, kick string) error {
	return r.LPush(ctx, kick, "k").Err()
}

// HubClear deletes the hub's own list.
func HubClear(ctx context.Context, r Sleeper, kick string) error {
	return r.Del(ctx, kick).Err()
}

// ProbeHub tells whether the server runs the hub's blocking call for this
// client: one BLMPOP of a millisecond on the hub's own (empty) list. It
// answers nil when it does, an error for which [Unsupported] holds when
// the server lacks the command (before Redis 7, or a server that only
// resembles Redis, such as miniredis) or the ACL user may not run it, and
// any other error when the probe could not tell.
func ProbeHub(ctx context.Context, r Sleeper, kick string) error {
	_, _, _, err := HubPop(ctx, r, time.Millisecond, []string{kick})
	return err
}

// Unsupported tells an error that no retry mends: the server lacks the
// command, or the ACL user may not run it.
func Unsupported(err error) bool {
	if err == nil {
		return false
	}
	s := strings.ToUpper(err.Error())
	return strings.Contains(s, "UNKNOWN COMMAND") || strings.HasPrefix(s, "NOPERM") || strings.Contains(s, "ERR UNKNOWN")
}

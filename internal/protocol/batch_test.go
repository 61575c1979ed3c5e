package protocol

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The poll and complete scripts gather some writes within one call and send
// them as one command per key (docs/protocol.md §4, last paragraph). The tests in this
// file check that this leaves exactly the state that the same work done
// one call at a time leaves: random queues are built twice, one copy gets
// one batched call, the other the same work call by call, and every key of
// both is compared.

// randomQueue writes a random queue of n mids into q: every status of
// docs/protocol.md §2, mids that stand in the lists more than once, mids in the
// lists that are absent from the queue, and due and windows entries (§11),
// some fallen due, some not, some missing. With sentinel false, mid-circle
// lacks its sentinel, which only a damaged queue does.
func randomQueue(t *testing.T, s *queuetest.Server, q string, rng *rand.Rand, n int, sentinel bool, now int64) {
	t.Helper()
	ctx := context.Background()
	r := s.RDB
	key := func(i keys.Index) string { return s.Key(q, i) }
	hset := func(i keys.Index, mid string, v any) {
		require.NoError(t, r.HSet(ctx, key(i), mid, v).Err())
	}
	sadd := func(i keys.Index, mid string) {
		require.NoError(t, r.SAdd(ctx, key(i), mid).Err())
	}
	zadd := func(i keys.Index, mid string, t0 int64) {
		require.NoError(t, r.ZAdd(ctx, key(i), redis.Z{Score: float64(t0), Member: mid}).Err())
	}
	var ready, circle []string
	for i := range n {
		mid := "m" + strconv.Itoa(i)
		if rng.IntN(8) > 0 { // else absent: only in the lists
			hset(keys.Messages, mid, "content-"+mid)
			hset(keys.UDTs, mid, now-60000)
			if rng.IntN(3) == 0 {
				hset(keys.LockTimes, mid, 30000)
			}
			if rng.IntN(2) == 0 {
				hset(keys.NAttempts, mid, 1+rng.IntN(3))
			}
			// index writes mid's due or windows entry (§11) at t, or
			// not, or at a time gone by.
			index := func(k keys.Index, t int64) {
				switch rng.IntN(3) {
				case 0:
				case 1:
					zadd(k, mid, t)
				default:
					zadd(k, mid, now-1000)
				}
			}
			switch rng.IntN(6) {
			case 0: // queued
			case 1: // locked, or its lock expired
				t := now + []int64{-600000, 600000}[rng.IntN(2)]
				hset(keys.Locks, mid, t)
				index(keys.Due, t)
			case 2: // done
				sadd(keys.Done, mid)
			case 3: // done, its lock left behind
				sadd(keys.Done, mid)
				hset(keys.Locks, mid, now-600000)
			default: // with a backoff, expired or not, done or queued
				t := now + []int64{-600000, 600000}[rng.IntN(2)]
				hset(keys.Backoffs, mid, t)
				if rng.IntN(2) == 0 {
					sadd(keys.Done, mid)
					index(keys.Windows, t)
				} else {
					index(keys.Due, t)
				}
			}
			switch rng.IntN(6) {
			case 0:
				hset(keys.MessagesRQ, mid, "rq-"+mid)
				if rng.IntN(2) == 0 {
					hset(keys.LockTimesRQ, mid, 45000)
				}
			case 1:
				sadd(keys.Requeue, mid)
			}
		}
		for range rng.IntN(3) {
			if rng.IntN(2) == 0 {
				ready = append(ready, mid)
			} else {
				circle = append(circle, mid)
			}
		}
	}
	rng.Shuffle(len(ready), func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
	rng.Shuffle(len(circle), func(i, j int) { circle[i], circle[j] = circle[j], circle[i] })
	if sentinel {
		circle = slices.Insert(circle, rng.IntN(len(circle)+1), EndOfCircle)
	}
	if len(ready) > 0 {
		require.NoError(t, r.RPush(ctx, key(keys.MidsReady), ready).Err())
	}
	if len(circle) > 0 {
		require.NoError(t, r.RPush(ctx, key(keys.MidCircle), circle).Err())
	}
	if rng.IntN(2) == 0 {
		require.NoError(t, r.Set(ctx, key(keys.NDryRuns), rng.IntN(4), 0).Err())
	}
}

// dumpQueue reads every key of q but the receipts into comparable text
// (queuetest.Dump).
func dumpQueue(t *testing.T, s *queuetest.Server, q string, now int64) map[string]string {
	t.Helper()
	return queuetest.Dump(t, s.RDB, func(i keys.Index) string { return s.Key(q, i) }, now)
}

// withoutSleepLists is a dump without the isleep lists. A call that
// records an outcome which readies a message, or makes it due before
// everything else, moves the sleep sentinel once (§6), so the same
// outcomes recorded by one call or by many leave it in one list or the
// other; and whether a retry's due time comes first depends on the
// millisecond each call runs at. TestOutcomeWakesWhenSooner pins the
// sentinel's moves instead.
func withoutSleepLists(d map[string]string) map[string]string {
	delete(d, "isleep-a")
	delete(d, "isleep-b")
	return d
}

// stepText is a step's answer with its times normalised as dumpQueue does.
func stepText(st Step) string {
	switch st.Kind {
	case StepHandle:
		return fmt.Sprintf("handle %s %s attempt=%d lock=%v", st.ID, st.Data, st.Attempt, st.LockTime)
	case StepSleep:
		return fmt.Sprintf("sleep %v %s %d", st.Sleep, st.SleepList, st.NDryRuns)
	}
	return "skip " + st.Reason
}

func TestBatchedCallsEqualOneByOne(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		const lockMS = 60000
		for seed := range uint64(40) {
			rng := rand.New(rand.NewPCG(seed, 1))
			now := s.Now(t)
			qa := fmt.Sprintf("%s:%d:batched", queuetest.QueueName(t), seed)
			qb := fmt.Sprintf("%s:%d:one-by-one", queuetest.QueueName(t), seed)
			n := 1 + rng.IntN(30)
			sentinel := seed%8 != 7
			randomQueue(t, s, qa, rand.New(rand.NewPCG(seed, 2)), n, sentinel, now)
			randomQueue(t, s, qb, rand.New(rand.NewPCG(seed, 2)), n, sentinel, now)
			require.Equal(t, dumpQueue(t, s, qa, now), dumpQueue(t, s, qb, now), "seed %d: the copies start equal", seed)

			// Outcomes for some mids, most holding the lock they name.
			var cs []Completion
			locks, err := s.RDB.HGetAll(ctx, s.Key(qa, keys.Locks)).Result()
			require.NoError(t, err)
			for id, v := range locks {
				token, _ := strconv.ParseInt(v, 10, 64)
				if rng.IntN(4) == 0 {
					token++
				}
				outcome := []Outcome{OutcomeSuccess, OutcomeRetry, OutcomeDead, OutcomeRelease}[rng.IntN(4)]
				cs = append(cs, Completion{ID: id, LockedUntil: token, Outcome: outcome, Backoff: time.Duration(rng.IntN(2)) * time.Minute})
				if rng.IntN(5) == 0 { // the same outcome twice in one call
					cs = append(cs, cs[len(cs)-1])
				}
			}
			slices.SortFunc(cs, func(a, b Completion) int { return strings.Compare(a.ID, b.ID) })
			maxSteps := 1 + rng.IntN(3*n+4)
			// Held not told: a call told that its worker holds nothing
			// ends at a suspect it hands out alone (§11, Quarantine), so
			// that it takes fewer steps than the calls of one step would.
			args := PollArgs{LockTime: lockMS * time.Millisecond, Sleeps: testSleeps, MaxSteps: maxSteps, Held: NotTold}

			batchArgs := args
			batchArgs.Completions = cs
			ra, err := poll(ctx, s, qa, batchArgs)
			require.NoError(t, err)

			recorded := []bool{}
			for _, x := range cs {
				ok, err := complete(ctx, s, qb, []Completion{x})
				require.NoError(t, err)
				recorded = append(recorded, ok...)
			}
			var stepsB []string
			args.MaxSteps = 1
			for len(stepsB) < maxSteps {
				rb, err := poll(ctx, s, qb, args)
				require.NoError(t, err)
				require.Len(t, rb.Steps, 1)
				stepsB = append(stepsB, stepText(rb.Steps[0]))
				if rb.Steps[0].Kind == StepSleep {
					break
				}
			}
			var stepsA []string
			for _, st := range ra.Steps {
				stepsA = append(stepsA, stepText(st))
			}
			// Which isleep list a sleep step names follows the sentinel
			// (see withoutSleepLists).
			for _, steps := range [][]string{stepsA, stepsB} {
				for i, st := range steps {
					if strings.HasPrefix(st, "sleep ") {
						steps[i] = strings.NewReplacer(" a ", " a|b ", " b ", " a|b ").Replace(st)
					}
				}
			}
			assert.Equal(t, recorded, ra.Recorded, "seed %d: outcomes", seed)
			assert.Equal(t, stepsB, stepsA, "seed %d: steps", seed)
			assert.Equal(t, withoutSleepLists(dumpQueue(t, s, qb, now)), withoutSleepLists(dumpQueue(t, s, qa, now)), "seed %d: state after", seed)
		}
	})
}

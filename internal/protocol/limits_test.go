package protocol

import (
	"context"
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

// The tests of docs/protocol.md §19: limits in the poll script, on a real
// Redis. Periods are long (a minute) so that no token comes due while a
// test runs: nothing here depends on timing.

// limitSteps answers the ids handed out and the skip reasons of r, and its
// sleep step (nil for none).
func limitSteps(r PollReply) (handed, skips []string, sleep *Step) {
	for i, s := range r.Steps {
		switch s.Kind {
		case StepHandle:
			handed = append(handed, s.ID)
		case StepSkip:
			skips = append(skips, s.Reason)
		case StepSleep:
			sleep = &r.Steps[i]
		}
	}
	return handed, skips, sleep
}

// limitsQueue is a queue with limits l, and messages id:key ("" for no
// key) enqueued in order.
func limitsQueue(t *testing.T, l Limits, msgs ...string) (*queuetest.Server, string) {
	t.Helper()
	s := fleetServer(t)
	q := queuetest.QueueName(t)
	_, err := SetLimits(context.Background(), s.RDB, s.Keys(q), l)
	require.NoError(t, err)
	for _, m := range msgs {
		id, key, _ := strings.Cut(m, ":")
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: id, LimitKey: key})
	}
	return s, q
}

func limitPoll(t *testing.T, s *queuetest.Server, q string, steps int) PollReply {
	t.Helper()
	r, err := poll(context.Background(), s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: steps, IndexOnly: true})
	require.NoError(t, err)
	return r
}

func slotCount(t *testing.T, s *queuetest.Server, q, field string) int64 {
	t.Helper()
	v := queuetest.HGet(t, s.RDB, s.Key(q, keys.SlotCounts), field)
	if v == "" {
		return 0
	}
	return queuetest.HGetInt(t, s.RDB, s.Key(q, keys.SlotCounts), field)
}

// TestLimitsQueueRate: GCRA on the queue: 1 + burst hand-outs at once,
// then a refusal that ends the call with a sleep until the next token,
// the refused message first in line; a later poll before the token hands
// nothing out.
func TestLimitsQueueRate(t *testing.T) {
	s, q := limitsQueue(t, Limits{Rate: RateArg(1, 60_000, 2)}, "a", "b", "c", "d", "e")
	assert.Equal(t, "+"+RateArg(1, 60_000, 2)+"|||", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "limits"), "the limits, read with the features")
	r := limitPoll(t, s, q, 10)
	handed, skips, sleep := limitSteps(r)
	assert.Equal(t, []string{"a", "b", "c"}, handed, "one token and a burst of two")
	assert.Equal(t, []string{"rate-limited"}, skips)
	require.NotNil(t, sleep, "a refusal by the queue's rate ends the call with a sleep")
	assert.Equal(t, testSleeps[4], sleep.Sleep, "the longest sleep: the token comes in a minute")
	assert.Equal(t, []string{"e", "d"}, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)), "d back first in line")

	r = limitPoll(t, s, q, 10)
	handed, skips, _ = limitSteps(r)
	assert.Empty(t, handed)
	assert.Equal(t, []string{"rate-limited"}, skips, "one step: no busy lap over the queue")
}

// TestLimitsQueueRateSleepsUntilToken: the sleep of a call refused by
// the queue's rate ends when the token comes due.
func TestLimitsQueueRateSleepsUntilToken(t *testing.T) {
	s, q := limitsQueue(t, Limits{Rate: RateArg(1, 2_000, 0)}, "a", "b")
	r, err := poll(context.Background(), s, q, PollArgs{LockTime: time.Minute, Sleeps: [5]time.Duration{time.Hour, time.Hour, time.Hour, time.Hour, time.Hour}, MaxSteps: 10, IndexOnly: true})
	require.NoError(t, err)
	handed, _, sleep := limitSteps(r)
	assert.Equal(t, []string{"a"}, handed)
	require.NotNil(t, sleep)
	assert.True(t, sleep.UntilDue)
	assert.LessOrEqual(t, sleep.Sleep, 2*time.Second, "until the token, not an hour")
	assert.Greater(t, sleep.Sleep, time.Duration(0))
}

// TestLimitsKeyRate: a message refused by its key's rate leaves the
// lists for due at its token, reserving it, so that the next of the key
// comes due one token later; other keys and keyless messages go on.
func TestLimitsKeyRate(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyRate: RateArg(1, 60_000, 0)}, "a1:A", "a2:A", "b1:B", "n1:", "a3:A")
	r := limitPoll(t, s, q, 10)
	handed, skips, _ := limitSteps(r)
	assert.Equal(t, []string{"a1", "b1", "n1"}, handed)
	assert.Equal(t, []string{"rate-limited", "rate-limited"}, skips[:2])
	now := r.Steps[0].Now
	due2 := s.RDB.ZScore(context.Background(), s.Key(q, keys.Due), "a2").Val()
	due3 := s.RDB.ZScore(context.Background(), s.Key(q, keys.Due), "a3").Val()
	assert.InDelta(t, float64(now+60_000), due2, 1, "a2 at the key's next token")
	assert.InDelta(t, float64(now+120_000), due3, 1, "a3 at the one after: each reserves its own")
	assert.Empty(t, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)))
	assert.True(t, s.RDB.HExists(context.Background(), s.Key(q, keys.RateTat), "r:a2").Val())
	assert.EqualValues(t, 2, s.RDB.ZCard(context.Background(), s.Key(q, keys.RateKeys)).Val(), "keys A and B")

	// A reserved message met on a list before its token (a Carmine
	// enqueue put it there, say) is refused until then.
	require.NoError(t, s.RDB.RPush(context.Background(), s.Key(q, keys.MidsReady), "a2").Err())
	r = limitPoll(t, s, q, 1)
	handed, skips, _ = limitSteps(r)
	assert.Empty(t, handed, "not before its reserved token")
	assert.Equal(t, []string{"rate-limited"}, skips)
	assert.InDelta(t, float64(now+60_000), s.RDB.ZScore(context.Background(), s.Key(q, keys.Due), "a2").Val(), 1, "still due at its token")

	// A reserved message woken at its token (here: both moved to now by
	// hand) goes out on its reservation, whatever the key's tat says.
	require.NoError(t, s.RDB.ZAdd(context.Background(), s.Key(q, keys.Due), redisZ(0, "a2")).Err())
	require.NoError(t, s.RDB.HSet(context.Background(), s.Key(q, keys.RateTat), "r:a2", 0).Err())
	r = limitPoll(t, s, q, 10)
	handed, _, _ = limitSteps(r)
	assert.Equal(t, []string{"a2"}, handed)
	assert.False(t, s.RDB.HExists(context.Background(), s.Key(q, keys.RateTat), "r:a2").Val(), "the reservation is used")
}

// TestLimitsReceiptsDoNotDoubleCount: a poll call sent again (its reply
// lost) gives back its hand-outs, their slots and their rate tokens, and
// takes them again; outcomes sent again are answered from the receipt
// and free no slot twice.
func TestLimitsReceiptsDoNotDoubleCount(t *testing.T) {
	s, q := limitsQueue(t, Limits{Rate: RateArg(2, 60_000, 1), Concurrency: "5"}, "x", "y", "z")
	ctx := context.Background()
	p := randomToken()
	args := PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1, IndexOnly: true, Poller: p, Seq: 1}
	r1, err := Poll(ctx, s.RDB, s.Keys(q), args)
	require.NoError(t, err)
	h1, _, _ := limitSteps(r1)
	require.Equal(t, []string{"x"}, h1)
	r1b, err := Poll(ctx, s.RDB, s.Keys(q), args) // the same call again
	require.NoError(t, err)
	h1b, _, _ := limitSteps(r1b)
	assert.Equal(t, []string{"x"}, h1b, "the resend's release refunded x's token")
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "x holds one slot")

	args.Seq, args.Confirmed = 2, 1
	r2, err := Poll(ctx, s.RDB, s.Keys(q), args)
	require.NoError(t, err)
	h2, _, _ := limitSteps(r2)
	require.Equal(t, []string{"y"}, h2, "the second token")
	assert.EqualValues(t, 2, slotCount(t, s, q, "q"))

	done := PollArgs{LockTime: time.Minute, Poller: p, Seq: 3, Confirmed: 2, IndexOnly: true,
		Completions: []Completion{{ID: "x", LockedUntil: r1b.Steps[0].LockedUntil, Outcome: OutcomeSuccess}}}
	r3, err := Poll(ctx, s.RDB, s.Keys(q), done)
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, r3.Recorded)
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "x's slot freed")
	r3b, err := Poll(ctx, s.RDB, s.Keys(q), done) // its reply lost: sent again
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, r3b.Recorded)
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "y's slot still held: no double free")
}

// TestLimitsQueueConcurrency: a hand-out takes a slot; with every slot
// held the call ends with a sleep; an outcome frees a slot and wakes a
// sleeper; a retry frees it too.
func TestLimitsQueueConcurrency(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "2"}, "a", "b", "c", "d")
	ctx := context.Background()
	r := limitPoll(t, s, q, 10)
	handed, skips, sleep := limitSteps(r)
	assert.Equal(t, []string{"a", "b"}, handed)
	assert.Equal(t, []string{"limited"}, skips)
	require.NotNil(t, sleep)
	assert.EqualValues(t, 2, slotCount(t, s, q, "q"))
	assert.Equal(t, []string{"d", "c"}, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)), "c back first in line")
	assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:a"), "slots[h:a] names no key")

	sentinel := func() string {
		return strings.Join(queuetest.List(t, s.RDB, s.Key(q, keys.ISleepA)), ",") + "|" +
			strings.Join(queuetest.List(t, s.RDB, s.Key(q, keys.ISleepB)), ",")
	}
	before := sentinel()
	ok, err := complete(ctx, s, q, []Completion{{ID: "a", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"))
	assert.NotEqual(t, before, sentinel(), "the freed slot woke a sleeper")
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), "h:a").Val())

	r = limitPoll(t, s, q, 10)
	handed, _, _ = limitSteps(r)
	assert.Equal(t, []string{"c"}, handed)
	assert.EqualValues(t, 2, slotCount(t, s, q, "q"))
	ok, err = complete(ctx, s, q, []Completion{{ID: "b", LockedUntil: lockOf(t, s, q, "b"), Outcome: OutcomeRetry}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "a retry frees the slot too")
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// TestLimitsKeyConcurrencyParks: a message refused for want of a slot of
// its key is parked (off every list, index_only), FIFO per key; freeing a
// slot of the key moves the first parked back, first in line.
func TestLimitsKeyConcurrencyParks(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyConcurrency: "1"}, "a1:A", "a2:A", "b1:B", "a3:A", "b2:B")
	ctx := context.Background()
	r := limitPoll(t, s, q, 10)
	handed, skips, _ := limitSteps(r)
	assert.Equal(t, []string{"a1", "b1"}, handed)
	assert.Equal(t, []string{"parked", "parked", "parked"}, skips[:3])
	assert.EqualValues(t, 3, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val())
	assert.Empty(t, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)), "parked ids are on no list")
	assert.EqualValues(t, 1, slotCount(t, s, q, "k:A"))
	assert.EqualValues(t, 2, slotCount(t, s, q, "q"))

	r = limitPoll(t, s, q, 10)
	handed, _, _ = limitSteps(r)
	assert.Empty(t, handed, "parked ids cost nothing while nothing changes")

	tokA := lockOf(t, s, q, "a1")
	ok, err := complete(ctx, s, q, []Completion{{ID: "a1", LockedUntil: tokA, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.Equal(t, []string{"a2"}, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)), "the first parked of A, back")
	r = limitPoll(t, s, q, 10)
	handed, _, _ = limitSteps(r)
	assert.Equal(t, []string{"a2"}, handed)
	assert.EqualValues(t, 2, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val(), "a3 and b2 wait")

	// Deleting a holder frees its slot and unparks the next of its key;
	// deleting a parked id drops it.
	_, err = Delete(ctx, s.RDB, s.Keys(q), []string{"b1", "a3"})
	require.NoError(t, err)
	assert.EqualValues(t, 0, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val())
	assert.Equal(t, []string{"b2"}, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady)))
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "a2 holds the only slot")
}

func lockOf(t *testing.T, s *queuetest.Server, q, id string) int64 {
	t.Helper()
	return queuetest.HGetInt(t, s.RDB, s.Key(q, keys.Locks), id)
}

// TestLimitsLockExpiryFreesSlot: a live handling keeps its slot past the
// lock it was handed out with, its renewal writing nothing of the slot (the
// slot's liveness is the lock's); a slot whose lock ran out with no
// outcome (its process died; here a Carmine worker then handled and
// collected the message, so it is never handed out again) is freed by the
// poll's wake of its due entry, and another message takes it.
func TestLimitsLockExpiryFreesSlot(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "1"}, "x", "y")
	ctx := context.Background()
	r, err := poll(ctx, s, q, PollArgs{LockTime: 200 * time.Millisecond, Sleeps: testSleeps, MaxSteps: 1, IndexOnly: true})
	require.NoError(t, err)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"x"}, handed)
	first := r.Steps[0].LockedUntil

	tok, err := Renew(ctx, s.RDB, s.Keys(q), []Renewal{{ID: "x", LockedUntil: first, LockTime: 1500 * time.Millisecond}})
	require.NoError(t, err)
	require.Greater(t, tok[0], first)
	assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:x"), "the slot as the hand-out wrote it")

	// Past the first lock: x's handling lives on (renewed), so y waits.
	require.Eventually(t, func() bool {
		r := limitPoll(t, s, q, 5)
		handed, skips, _ := limitSteps(r)
		require.Empty(t, handed, "x's renewed handling keeps its slot")
		require.Equal(t, []string{"limited"}, skips)
		return s.RDB.Time(ctx).Val().UnixMilli() > first+50
	}, 30*time.Second, 20*time.Millisecond)

	// x's process dies; a Carmine worker takes x once its lock ran out and
	// collects it (Carmine's collection knows none of our keys).
	for _, k := range []keys.Index{keys.Messages, keys.UDTs, keys.Locks, keys.NAttempts} {
		require.NoError(t, s.RDB.HDel(ctx, s.Key(q, k), "x").Err())
	}
	var got []string
	require.Eventually(t, func() bool {
		got, _, _ = limitSteps(limitPoll(t, s, q, 5))
		return len(got) > 0
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{"y"}, got, "x's slot came back at its lock's expiry")
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "y's")
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), "h:x").Val())
}

// TestLimitsSetReleasesParked: setting limits puts parked ids back, and
// clearing them lets everything go. features.limits spells the limits as
// set (an enqueue with a limit key leaves it), and none once cleared.
func TestLimitsSetReleasesParked(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyConcurrency: "1"}, "a1:A", "a2:A")
	ctx := context.Background()
	assert.Equal(t, "+|||1", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "limits"))
	limitPoll(t, s, q, 10)
	require.EqualValues(t, 1, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val())
	n, err := SetLimits(ctx, s.RDB, s.Keys(q), Limits{})
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	assert.Equal(t, "+|||", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "limits"))
	r := limitPoll(t, s, q, 10)
	handed, _, _ := limitSteps(r)
	assert.Equal(t, []string{"a2"}, handed)
	st, err := ReadLimits(ctx, s.RDB, s.Keys(q))
	require.NoError(t, err)
	assert.Equal(t, Limits{}, st.Limits)
	assert.EqualValues(t, 1, st.SlotsHeld, "a1's slot is held until its outcome: a2 took none")
}

// TestLimitsRequeueKeepsKey: a requeue (CanRequeue) that becomes the
// message keeps the limit key its enqueue gave, as a priority is kept.
func TestLimitsRequeueKeepsKey(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyConcurrency: "1"}, "x:A")
	ctx := context.Background()
	r := limitPoll(t, s, q, 1)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"x"}, handed)
	mustEnqueue(t, s, q, "again", &EnqueueMessage{ID: "x", CanRequeue: true, LimitKey: "A"})
	mustEnqueue(t, s, q, "y", &EnqueueMessage{ID: "y", LimitKey: "A"})
	ok, err := complete(ctx, s, q, []Completion{{ID: "x", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	r = limitPoll(t, s, q, 5)
	handed, skips, _ := limitSteps(r)
	assert.Len(t, handed, 1, "one of A at a time: the requeued x still counts under A")
	assert.Contains(t, skips, "parked")
}

// TestLimitsGatheredInOneCall: a call counts its own hand-outs before it
// writes them (limits.lua gathers its writes): one poll over five
// messages of a key with 2 slots hands out exactly 2 and parks the rest,
// and the counts it writes are the net of the call.
func TestLimitsGatheredInOneCall(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyConcurrency: "2", Concurrency: "4", Rate: RateArg(3, 60_000, 2)},
		"a1:A", "a2:A", "a3:A", "b1:B", "a4:A", "b2:B", "b3:B")
	ctx := context.Background()
	r := limitPoll(t, s, q, 10)
	handed, skips, sleep := limitSteps(r)
	assert.Equal(t, []string{"a1", "a2", "b1"}, handed, "2 of A, then the queue's rate (a burst of 3) stops the call")
	assert.Equal(t, []string{"parked", "parked", "rate-limited"}, skips)
	require.NotNil(t, sleep)
	assert.EqualValues(t, 2, slotCount(t, s, q, "k:A"))
	assert.EqualValues(t, 1, slotCount(t, s, q, "k:B"))
	assert.EqualValues(t, 3, slotCount(t, s, q, "q"))
	assert.EqualValues(t, 2, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val(), "a3 and a4")
	tat := queuetest.HGetInt(t, s.RDB, s.Key(q, keys.SlotCounts), "tq")
	assert.InDelta(t, float64(r.Steps[0].Now*1000+60_000_000), float64(tat), 1000, "three tokens of 20 s, written once")

	// Outcomes of the three in one call free three slots, net.
	var cs []Completion
	for _, st := range r.Steps {
		if st.Kind == StepHandle {
			cs = append(cs, Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess})
		}
	}
	ok, err := complete(ctx, s, q, cs)
	require.NoError(t, err)
	assert.Equal(t, []bool{true, true, true}, ok)
	assert.EqualValues(t, 0, slotCount(t, s, q, "q"))
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.SlotCounts), "k:A").Val(), "a count at 0 goes")
	assert.EqualValues(t, 0, s.RDB.HLen(ctx, s.Key(q, keys.Slots)).Val(), "no slot left, the parked entries taken back")
	assert.Equal(t, []string{"b2", "a3", "a4"}, queuetest.List(t, s.RDB, s.Key(q, keys.MidsReady))[1:], "each freed slot of A unparked one, first in line")
	assert.EqualValues(t, 0, s.RDB.ZCard(ctx, s.Key(q, keys.Parked)).Val())
}

// TestLimitsHandOutKeepsHeldSlot: a message handed out again while it
// still holds a slot (its lock ran out, its wake not yet come) keeps that
// slot and the key it was taken under, counted once, whether the queue's
// slots are all held or not.
func TestLimitsHandOutKeepsHeldSlot(t *testing.T) {
	for _, conc := range []string{"1", "5"} {
		t.Run("conc "+conc, func(t *testing.T) {
			s, q := limitsQueue(t, Limits{Concurrency: conc, KeyConcurrency: "5"}, "x:A", "y:A")
			ctx := context.Background()
			// x holds a slot under key Z from an earlier hand-out.
			require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Slots), "h:x", "Z").Err())
			require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.SlotCounts), "q", 1, "k:Z", 1).Err())
			r := limitPoll(t, s, q, 1)
			handed, _, _ := limitSteps(r)
			require.Equal(t, []string{"x"}, handed)
			assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "x's slot, counted once")
			assert.EqualValues(t, 1, slotCount(t, s, q, "k:Z"))
			assert.EqualValues(t, 0, slotCount(t, s, q, "k:A"))
			assert.Equal(t, "Z", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:x"), "the key it was taken under")
			r = limitPoll(t, s, q, 2)
			handed, skips, _ := limitSteps(r)
			if conc == "1" {
				assert.Empty(t, handed, "x holds the only slot")
				assert.Equal(t, []string{"limited"}, skips)
			} else {
				assert.Equal(t, []string{"y"}, handed)
				assert.EqualValues(t, 2, slotCount(t, s, q, "q"))
				assert.EqualValues(t, 1, slotCount(t, s, q, "k:A"))
			}
		})
	}
}

// TestLimitsHeldSlotThenNewSlot hands out, in one call, a message that
// holds its slot already and then one that needs a new slot: the second
// takes its own (the plan of one hand-out carries nothing to the next).
func TestLimitsHeldSlotThenNewSlot(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyConcurrency: "1"}, "x:Z", "y:A")
	ctx := context.Background()
	// x holds the only slot of its key Z from an earlier hand-out.
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Slots), "h:x", "Z").Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.SlotCounts), "q", 1, "k:Z", 1).Err())
	r := limitPoll(t, s, q, 2)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"x", "y"}, handed)
	assert.EqualValues(t, 2, slotCount(t, s, q, "q"), "x's slot and y's")
	assert.EqualValues(t, 1, slotCount(t, s, q, "k:Z"))
	assert.EqualValues(t, 1, slotCount(t, s, q, "k:A"), "y's slot, under its key")
	assert.Equal(t, "A", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:y"))
}

// TestLimitsHandOutKeepsHeldSlotNoKeyLimit: without a limit per key, the
// hand-outs' slots are written by one HSET whose answer (the fields it
// added) tells which were held already: a message handed out again while
// it holds a slot is counted once, among others handed out in the same
// call.
func TestLimitsHandOutKeepsHeldSlotNoKeyLimit(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "5"}, "x", "y", "z")
	ctx := context.Background()
	// x holds a slot from an earlier hand-out.
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Slots), "h:x", "").Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.SlotCounts), "q", 1).Err())
	r := limitPoll(t, s, q, 3)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"x", "y", "z"}, handed)
	assert.EqualValues(t, 3, slotCount(t, s, q, "q"), "x's slot counted once")
	for _, f := range []string{"h:x", "h:y", "h:z"} {
		assert.True(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), f).Val(), f)
	}
	var cs []Completion
	for _, st := range r.Steps {
		if st.Kind == StepHandle {
			cs = append(cs, Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess})
		}
	}
	_, err := complete(ctx, s, q, cs)
	require.NoError(t, err)
	assert.EqualValues(t, 0, slotCount(t, s, q, "q"))
	assert.EqualValues(t, 0, s.RDB.HLen(ctx, s.Key(q, keys.Slots)).Val())
}

// TestLimitsHandOutKeepsHeldSlotAtLimit: with the queue's slots all held
// (limits of the queue alone), a message that holds one of them still
// (its lock ran out, its wake not yet come) is handed out on it, and
// counted once; the next is refused.
func TestLimitsHandOutKeepsHeldSlotAtLimit(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "1"}, "x", "y")
	ctx := context.Background()
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Slots), "h:x", "").Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.SlotCounts), "q", 1).Err())
	r := limitPoll(t, s, q, 3)
	handed, skips, _ := limitSteps(r)
	assert.Equal(t, []string{"x"}, handed, "x on the slot it holds")
	assert.Equal(t, []string{"limited"}, skips, "y waits")
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "x's slot counted once")
	assert.True(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), "h:x").Val())
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), "h:y").Val())
}

// TestLimitsQueueOnlyDropsReservations: reservations of a key's token
// left by a rate per key since lifted go with their messages (slot-counts
// nr counts them down): the limits of the queue alone still drop a
// collected message's mark.
func TestLimitsQueueOnlyDropsReservations(t *testing.T) {
	s, q := limitsQueue(t, Limits{KeyRate: RateArg(1, 60_000, 0)}, "a1:A", "a2:A", "a3:A")
	ctx := context.Background()
	r := limitPoll(t, s, q, 3)
	handed, skips, _ := limitSteps(r)
	require.Equal(t, []string{"a1"}, handed)
	require.Equal(t, []string{"rate-limited", "rate-limited"}, skips)
	require.EqualValues(t, 2, slotCount(t, s, q, "nr"))
	_, err := SetLimits(ctx, s.RDB, s.Keys(q), Limits{Concurrency: "5"})
	require.NoError(t, err)
	ok, err := complete(ctx, s, q, []Completion{{ID: "a1", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 2, slotCount(t, s, q, "nr"), "a1 held no reservation")
	_, err = Delete(ctx, s.RDB, s.Keys(q), []string{"a2"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, slotCount(t, s, q, "nr"), "a2's reservation gone with it")
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.RateTat), "r:a2").Val())
	assert.True(t, s.RDB.HExists(ctx, s.Key(q, keys.RateTat), "r:a3").Val())
}

// TestLimitsLoneOutcomeWithoutSlot: without a concurrency limit per key a
// lone outcome frees its slot by its HDEL at once, whose answer tells
// whether it held one: an outcome of a message that holds none (its slot
// freed already) leaves the count of the others alone.
func TestLimitsLoneOutcomeWithoutSlot(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "5"}, "a", "b")
	ctx := context.Background()
	r := limitPoll(t, s, q, 2)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"a", "b"}, handed)
	require.EqualValues(t, 2, slotCount(t, s, q, "q"))
	// a's slot is gone (as freed by its lock's expiry), b's is held.
	require.NoError(t, s.RDB.HDel(ctx, s.Key(q, keys.Slots), "h:a").Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.SlotCounts), "q", 1).Err())
	ok, err := complete(ctx, s, q, []Completion{{ID: "a", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"), "b's slot still counts")
	assert.True(t, s.RDB.HExists(ctx, s.Key(q, keys.Slots), "h:b").Val())
	ok, err = complete(ctx, s, q, []Completion{{ID: "b", LockedUntil: r.Steps[1].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 0, slotCount(t, s, q, "q"))
	assert.EqualValues(t, 0, s.RDB.HLen(ctx, s.Key(q, keys.Slots)).Val())
}

// TestLimitsSetWithoutKeyLimitUnkeys: limits set without a concurrency
// limit per key leave no slot counted under a key (the hand-outs' HSET of
// TestLimitsHandOutKeepsHeldSlotNoKeyLimit relies on it): a slot taken
// under key A keeps counting for the queue, under no key, and is freed as
// such.
func TestLimitsSetWithoutKeyLimitUnkeys(t *testing.T) {
	s, q := limitsQueue(t, Limits{Concurrency: "5", KeyConcurrency: "5"}, "x:A")
	ctx := context.Background()
	r := limitPoll(t, s, q, 1)
	handed, _, _ := limitSteps(r)
	require.Equal(t, []string{"x"}, handed)
	require.Equal(t, "A", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:x"))
	require.EqualValues(t, 1, slotCount(t, s, q, "k:A"))
	_, err := SetLimits(ctx, s.RDB, s.Keys(q), Limits{Concurrency: "5"})
	require.NoError(t, err)
	assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:x"), "under no key")
	assert.False(t, s.RDB.HExists(ctx, s.Key(q, keys.SlotCounts), "k:A").Val(), "no count per key")
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"))
	ok, err := complete(ctx, s, q, []Completion{{ID: "x", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeSuccess}})
	require.NoError(t, err)
	assert.Equal(t, []bool{true}, ok)
	assert.EqualValues(t, 0, slotCount(t, s, q, "q"))
	assert.EqualValues(t, 0, s.RDB.HLen(ctx, s.Key(q, keys.Slots)).Val())
}

// TestLimitsLayoutBeforeMoves: a queue whose limits were set by the
// layout before (features.limits spelled with '=', the queue's tat and
// reservations' count in rate-tat 'q' and 'nr', a slot under a key with no
// limit per key) is moved to the layout of now by its first poll, which
// honours the tat it moved.
func TestLimitsLayoutBeforeMoves(t *testing.T) {
	s, q := limitsQueue(t, Limits{Rate: RateArg(1, 60_000, 0), Concurrency: "5"}, "a")
	ctx := context.Background()
	now, err := s.RDB.Time(ctx).Result()
	require.NoError(t, err)
	tat := now.UnixMicro() + 10*60_000_000 // ten tokens ahead: nothing goes out
	ks := s.Key(q, keys.SlotCounts)
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Features), "limits", "="+RateArg(1, 60_000, 0)+"||5|").Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.RateTat), "q", tat, "nr", 1).Err())
	require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Slots), "h:old", "K").Err())
	require.NoError(t, s.RDB.HSet(ctx, ks, "q", 1, "k:K", 1).Err())
	r := limitPoll(t, s, q, 1)
	handed, skips, _ := limitSteps(r)
	assert.Empty(t, handed, "the tat moved over holds")
	assert.Equal(t, []string{"rate-limited"}, skips)
	assert.Equal(t, "+"+RateArg(1, 60_000, 0)+"||5|", queuetest.HGet(t, s.RDB, s.Key(q, keys.Features), "limits"))
	assert.EqualValues(t, tat, queuetest.HGetInt(t, s.RDB, ks, "tq"))
	assert.EqualValues(t, 1, queuetest.HGetInt(t, s.RDB, ks, "nr"))
	assert.EqualValues(t, 0, s.RDB.HLen(ctx, s.Key(q, keys.RateTat)).Val(), "rate-tat keeps the keys' state alone")
	assert.Equal(t, "", queuetest.HGet(t, s.RDB, s.Key(q, keys.Slots), "h:old"), "no limit per key: under no key")
	assert.False(t, s.RDB.HExists(ctx, ks, "k:K").Val())
	assert.EqualValues(t, 1, slotCount(t, s, q, "q"))
}

package fault

import (
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/stretchr/testify/require"
)

// run builds a history by hand: times are milliseconds from a fixed start.
type run struct {
	t0     time.Time
	events []Event
	n      int64
}

func newRun() *run { return &run{t0: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (r *run) add(ms int, e Event) *run {
	e.Time = r.t0.Add(time.Duration(ms) * time.Millisecond)
	r.events = append(r.events, e)
	return r
}

// enqueued records an acknowledged enqueue of each id at time 0.
func (r *run) enqueued(ids ...string) *run {
	for _, id := range ids {
		r.add(0, Event{PID: 1, Kind: EnqueueAttempt, ID: id})
		r.add(0, Event{PID: 1, Kind: EnqueueAck, ID: id, Result: "added"})
	}
	return r
}

// handled records a handling of id in pid from ms to end (no end if end
// is negative), with the lock time and renewal given.
func (r *run) handled(id string, pid, attempt, ms, end int, lockMS int64, renew bool) *run {
	r.n++
	r.add(ms, Event{PID: pid, Kind: HandleStart, ID: id, Handling: r.n, Attempt: attempt, LockMS: lockMS, Renew: renew})
	if end >= 0 {
		r.add(end, Event{PID: pid, Kind: HandleEnd, ID: id, Handling: r.n})
	}
	return r
}

func (r *run) check(t *testing.T) Report {
	t.Helper()
	ev := append([]Event(nil), r.events...)
	sortEvents(ev)
	rep := Check(ev)
	t.Log(rep)
	return rep
}

func TestCheckClean(t *testing.T) {
	t.Parallel()
	rep := newRun().enqueued("a", "b").
		handled("a", 2, 1, 10, 20, 1000, false).
		handled("b", 3, 1, 15, 30, 1000, true).
		check(t)
	require.Equal(t, Report{Attempted: 2, Acked: 2, Starts: 2, Handled: 2,
		ByCause: map[string]int{}, Faults: map[Kind]int{}}, rep)
}

func TestCheckLost(t *testing.T) {
	t.Parallel()
	rep := newRun().enqueued("a", "b", "c").
		handled("a", 2, 1, 10, 20, 1000, false).
		handled("b", 2, 1, 10, -1, 1000, false). // started, never ended
		check(t)
	require.Equal(t, 2, rep.Lost)
	require.Equal(t, 1, rep.Handled)
	require.Contains(t, rep.String(), "lost 2,")
	require.Contains(t, rep.Examples, "lost b: 1 starts, none ended")
}

func TestCheckKilled(t *testing.T) {
	t.Parallel()
	for name, end := range map[string]int{"mid-handling": -1, "after its end": 40} {
		t.Run(name, func(t *testing.T) {
			rep := newRun().enqueued("a").
				handled("a", 2, 1, 10, end, 1000, true).
				add(50, Event{PID: 1, Kind: ProcessKilled, Target: 2}).
				handled("a", 3, 2, 1100, 1120, 1000, true).
				check(t)
			require.Equal(t, 0, rep.Lost)
			require.Equal(t, 1, rep.Duplicated)
			require.Equal(t, 1, rep.Attributable)
			require.Equal(t, map[string]int{CauseKilled: 1}, rep.ByCause)
			require.Zero(t, rep.Unexpected+rep.Overlaps)
		})
	}
	// A kill of another process, or one after the second start, explains
	// nothing.
	rep := newRun().enqueued("a").
		handled("a", 2, 1, 10, 20, 1000, false).
		add(30, Event{PID: 1, Kind: ProcessKilled, Target: 9}).
		handled("a", 3, 1, 100, 120, 1000, false).
		add(200, Event{PID: 1, Kind: ProcessKilled, Target: 2}).
		check(t)
	require.Equal(t, 1, rep.Unexpected)
}

func TestCheckRedisFault(t *testing.T) {
	t.Parallel()
	for _, k := range []Kind{RedisKilled, RedisRestarted, RedisPaused, RedisResumed} {
		rep := newRun().enqueued("a").
			handled("a", 2, 1, 10, 30, 1000, true).
			add(20, Event{PID: 1, Kind: k}).
			handled("a", 3, 2, 3000, 3020, 1000, true).
			check(t)
		require.Equal(t, map[string]int{CauseRedis: 1}, rep.ByCause, k)
		require.Equal(t, 1, rep.Faults[k])
		require.Zero(t, rep.Unexpected+rep.Overlaps)
	}
	// Over a lock time before the first start, a fault explains nothing.
	rep := newRun().enqueued("a").
		add(5, Event{PID: 1, Kind: RedisPaused}).
		handled("a", 2, 1, 3000, 3030, 1000, true).
		handled("a", 3, 1, 3300, 3320, 1000, true).
		check(t)
	require.Equal(t, 1, rep.Unexpected)

	// Within a lock time before it, the poll's reply may have been held
	// up by the pause while the lock ran out: a handler starts on an
	// expired lock, another takes the message at once. Concurrent, but
	// not an overlap, and explained.
	rep = newRun().enqueued("a").
		add(500, Event{PID: 1, Kind: RedisPaused}).
		add(4500, Event{PID: 1, Kind: RedisResumed}).
		handled("a", 2, 1, 4510, 4520, 2000, true).
		handled("a", 3, 2, 4511, 4516, 2000, true).
		check(t)
	require.Equal(t, map[string]int{CauseRedis: 1}, rep.ByCause)
	require.Zero(t, rep.Overlaps)
	require.Equal(t, 1, rep.Concurrent)
}

// TestCheckLockExpiry: a handler that outruns its lock (no renewal) is
// taken over after the deadline: attributable, no overlap. A takeover
// before the deadline is an overlap, and unexplained.
func TestCheckLockExpiry(t *testing.T) {
	t.Parallel()
	rep := newRun().enqueued("a").
		handled("a", 2, 1, 0, 1500, 1000, false).
		handled("a", 3, 2, 900, 950, 1000, false).
		check(t)
	require.Equal(t, map[string]int{CauseLockExpired: 1}, rep.ByCause)
	require.Zero(t, rep.Overlaps)
	require.Equal(t, 1, rep.Concurrent, "two handlers at once, the first past its lock")

	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 1500, 1000, false).
		handled("a", 3, 2, 300, 350, 1000, false).
		check(t)
	require.Equal(t, 1, rep.Overlaps)
	require.Equal(t, 1, rep.Concurrent)
	require.Equal(t, 1, rep.Unexpected)

	// A handler that ended before its deadline was not fenced off: a
	// later start is not explained by the lock.
	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 100, 1000, false).
		handled("a", 3, 2, 900, 950, 1000, false).
		check(t)
	require.Equal(t, 1, rep.Unexpected)
	require.Zero(t, rep.Overlaps)

	// With renewal the lock holds as long as the handling runs.
	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 5000, 1000, true).
		handled("a", 3, 2, 3000, 3050, 1000, true).
		check(t)
	require.Equal(t, 1, rep.Overlaps)
	require.Equal(t, 1, rep.Unexpected)
}

// TestCheckOverlapNeedsValidLock: after a proxy fault, a renewing
// handling's lock is not presumed valid; nor after a Redis fault, which
// also explains the duplicate.
func TestCheckOverlapNeedsValidLock(t *testing.T) {
	t.Parallel()
	rep := newRun().enqueued("a").
		handled("a", 2, 1, 0, 5000, 1000, true).
		add(1000, Event{PID: 1, Kind: ProxyDrop, Note: "evalsha"}).
		handled("a", 3, 2, 3000, 3050, 1000, true).
		check(t)
	require.Zero(t, rep.Overlaps)
	require.Equal(t, 1, rep.Unexpected, "a proxy fault explains no duplicate")

	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 5000, 1000, true).
		add(1000, Event{PID: 1, Kind: RedisPaused}).
		handled("a", 3, 2, 3000, 3050, 1000, true).
		check(t)
	require.Zero(t, rep.Overlaps)
	require.Equal(t, 1, rep.Attributable)

	// An overlap is counted once per extra start, however many handlings
	// it overlaps.
	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 5000, 1000, true).
		handled("a", 3, 1, 100, 5000, 1000, true).
		handled("a", 4, 1, 200, 5000, 1000, true).
		check(t)
	require.Equal(t, 2, rep.Duplicated)
	require.Equal(t, 2, rep.Overlaps)
}

func TestCheckErrorAndReEnqueue(t *testing.T) {
	t.Parallel()
	r := newRun().enqueued("a").handled("a", 2, 1, 0, -1, 1000, false)
	r.add(10, Event{PID: 2, Kind: HandleEnd, ID: "a", Handling: r.n, Err: "boom"})
	rep := r.handled("a", 2, 2, 50, 60, 1000, false).check(t)
	require.Equal(t, map[string]int{CauseError: 1}, rep.ByCause)

	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 10, 1000, false).
		add(20, Event{PID: 1, Kind: EnqueueAttempt, ID: "a"}).
		add(21, Event{PID: 1, Kind: EnqueueAck, ID: "a", Result: "added"}).
		handled("a", 2, 1, 30, 40, 1000, false).
		check(t)
	require.Equal(t, map[string]int{CauseReEnqueued: 1}, rep.ByCause)

	// The resend case: one enqueue, handled, then handled again at
	// attempt 1 with nothing in between.
	rep = newRun().enqueued("a").
		handled("a", 2, 1, 0, 10, 1000, false).
		handled("a", 3, 1, 30, 40, 1000, false).
		check(t)
	require.Equal(t, 1, rep.Unexpected)
	require.Zero(t, rep.Overlaps)
	require.Contains(t, rep.Examples[0], "unexpected a: attempt 1 in pid 2")
}

func TestCheckEnqueueAnswers(t *testing.T) {
	t.Parallel()
	rep := newRun().
		add(0, Event{PID: 1, Kind: EnqueueAttempt, ID: "refused"}).
		add(1, Event{PID: 1, Kind: EnqueueAck, ID: "refused", Result: "already-queued"}).
		add(0, Event{PID: 1, Kind: EnqueueAttempt, ID: "failed"}).
		add(1, Event{PID: 1, Kind: EnqueueFail, ID: "failed", Err: "i/o timeout"}).
		handled("refused", 2, 1, 10, 20, 1000, false).
		handled("failed", 2, 1, 10, 20, 1000, false).
		handled("stray", 2, 1, 10, 20, 1000, false).
		add(30, Event{PID: 2, Kind: WorkerExit, Counts: &mq.Counts{LockLost: 3, Abandoned: 1}}).
		check(t)
	require.Equal(t, 2, rep.Attempted)
	require.Equal(t, 1, rep.Acked)
	require.Equal(t, 1, rep.AckedRefused)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 1, rep.FailedButHandled)
	require.Equal(t, 1, rep.Stray)
	require.Equal(t, 3, rep.Handled)
	require.Equal(t, 1, rep.WorkerExits)
	require.Equal(t, int64(3), rep.LockLost)
	require.Equal(t, int64(1), rep.Abandoned)
}

func TestCheckAckedWhileFull(t *testing.T) {
	t.Parallel()
	rep := newRun().
		add(0, Event{PID: 1, Kind: EnqueueAttempt, ID: "before"}).
		add(10, Event{PID: 1, Kind: OOMBegin}).
		add(11, Event{PID: 1, Kind: EnqueueAck, ID: "before", Result: "added"}).
		add(20, Event{PID: 1, Kind: EnqueueAttempt, ID: "in"}).
		add(21, Event{PID: 1, Kind: EnqueueAck, ID: "in", Result: "added"}).
		add(30, Event{PID: 1, Kind: EnqueueAttempt, ID: "refused"}).
		add(31, Event{PID: 1, Kind: EnqueueFail, ID: "refused", Err: "OOM"}).
		add(40, Event{PID: 1, Kind: OOMEnd}).
		add(50, Event{PID: 1, Kind: EnqueueAttempt, ID: "after"}).
		add(51, Event{PID: 1, Kind: EnqueueAck, ID: "after", Result: "added"}).
		check(t)
	require.Equal(t, 1, rep.AckedWhileFull)
	require.Equal(t, 3, rep.Lost)
	require.Equal(t, map[Kind]int{OOMBegin: 1, OOMEnd: 1}, rep.Faults)
}

// TestCheckStalled: a worker process that was not scheduled for a while
// (a stall it saw itself) explains a redelivery of what it held, and its
// locks are not presumed valid; a stall long before explains nothing.
func TestCheckStalled(t *testing.T) {
	t.Parallel()
	rep := newRun().enqueued("a").
		handled("a", 2, 1, 0, 5000, 1000, true).
		add(2500, Event{PID: 2, Kind: ProcessStalled, StallMS: 2000}).
		handled("a", 3, 2, 3000, 3050, 1000, true).
		check(t)
	require.Equal(t, map[string]int{CauseStalled: 1}, rep.ByCause)
	require.Zero(t, rep.Overlaps)
	require.Equal(t, 1, rep.Faults[ProcessStalled])

	// Stalled just before the start: the poll's lock may be old already.
	rep = newRun().enqueued("a").
		add(900, Event{PID: 2, Kind: ProcessStalled, StallMS: 800}).
		handled("a", 2, 1, 1000, 1500, 1000, false).
		handled("a", 3, 2, 1200, 1250, 1000, false).
		check(t)
	require.Equal(t, map[string]int{CauseStalled: 1}, rep.ByCause)
	require.Zero(t, rep.Overlaps)

	rep = newRun().enqueued("a").
		add(100, Event{PID: 2, Kind: ProcessStalled, StallMS: 50}).
		handled("a", 2, 1, 5000, 5010, 1000, true).
		handled("a", 3, 1, 5100, 5110, 1000, true).
		add(6000, Event{PID: 3, Kind: ProcessStalled, StallMS: 500}).
		check(t)
	require.Equal(t, 1, rep.Unexpected)
}

// handedOff records a handling of id, handed off by parent (handsOff: it
// hands off in turn), in pid from ms to end.
func (r *run) handedOff(id, parent string, handsOff bool, pid, attempt, ms, end int) *run {
	r.n++
	r.add(ms, Event{PID: pid, Kind: HandleStart, ID: id, Handling: r.n, Attempt: attempt, LockMS: 1000,
		Queue: "b", Parent: parent, HandsOff: handsOff})
	if end >= 0 {
		r.add(end, Event{PID: pid, Kind: HandleEnd, ID: id, Handling: r.n})
	}
	return r
}

// TestCheckHandoffs: the checker counts a pipeline's hand-offs lost (a
// completed handling that hands off, nothing handed off by it handled),
// duplicated (two ids handed off by one) and enqueued again (a handed-off
// id handled at attempt 1 twice), and takes handed-off ids for no strays.
func TestCheckHandoffs(t *testing.T) {
	t.Parallel()
	start := func(r *run, id string, ms int) *run {
		r.n++
		r.add(ms, Event{PID: 2, Kind: HandleStart, ID: id, Handling: r.n, Attempt: 1, LockMS: 1000, HandsOff: true})
		r.add(ms+5, Event{PID: 2, Kind: HandleEnd, ID: id, Handling: r.n})
		return r
	}
	r := newRun().enqueued("a", "b", "c")
	start(r, "a", 10).handedOff("a/1/0", "a", false, 2, 1, 20, 30)
	start(r, "b", 10).handedOff("b/1/0", "b", false, 2, 1, 20, 30).handedOff("b/2/0", "b", false, 3, 1, 20, 30)
	start(r, "c", 10)
	r.handedOff("a/1/0", "a", false, 3, 1, 40, 50)
	rep := r.check(t)
	require.Equal(t, 3, rep.Handoffs)
	require.Equal(t, 1, rep.HandoffsLost, "c")
	require.Equal(t, 1, rep.HandoffsDuplicated, "b")
	require.Equal(t, 1, rep.HandoffsReenqueued, "a/1/0")
	require.Zero(t, rep.Stray)
	require.Zero(t, rep.Lost)
}

// TestPeakRunning: handlings overlapping in time count together, by group
// too; one whose lock may have run out (a Redis fault since one lock time
// before its start) does not.
func TestPeakRunning(t *testing.T) {
	t.Parallel()
	group := func(id string) string { return id[:1] }
	r := newRun().enqueued("a1", "a2", "b1", "b2").
		handled("a1", 2, 1, 10, 50, 1000, true).
		handled("a2", 3, 1, 20, 60, 1000, true).
		handled("b1", 2, 1, 30, 40, 1000, true).
		handled("b2", 3, 1, 45, 70, 1000, true) // b1 ended before it
	peak, by := PeakRunning(r.events, group)
	require.Equal(t, 3, peak)
	require.Equal(t, map[string]int{"a": 2, "b": 1}, by)

	// Four at once just after a Redis restart: none is known to hold its
	// lock (the poll's reply may have waited out the fault); four at once
	// a lock time later all are.
	r.add(5000, Event{PID: 1, Kind: RedisRestarted})
	for i := range 4 {
		r.handled("a1", 2+i%2, 2+i, 5100+i, 5200, 1000, true)
	}
	ev := append([]Event(nil), r.events...)
	sortEvents(ev)
	peak, _ = PeakRunning(ev, group)
	require.Equal(t, 3, peak)
	for i := range 4 {
		r.handled("b3", 2+i%2, 1+i, 7100+i, 7200, 1000, true)
	}
	ev = append(ev[:0], r.events...)
	sortEvents(ev)
	peak, by = PeakRunning(ev, group)
	require.Equal(t, 4, peak)
	require.Equal(t, map[string]int{"a": 2, "b": 4}, by)
}

// TestCheckFenced: a handling whose outcome its worker found fenced off
// (HandleFenced) explains the next start of its id when both the fence
// and that start came no sooner than its lock could have run out: the
// id's first enqueue attempt (0 here) plus the handling's Age plus its
// lock time. A fence told before then is counted as early, and explains
// nothing.
func TestCheckFenced(t *testing.T) {
	t.Parallel()
	// Lock 1,000 ms taken by a poll 700 ms after the enqueue (Age): it
	// runs out at 1,700 ms, though the handler started and ended at 1,500
	// ms, well inside the checker's presumed deadline (start + 750).
	fenced := func(fenceMS, againMS int) Report {
		r := newRun().enqueued("a")
		r.n++
		r.add(1500, Event{PID: 2, Kind: HandleStart, ID: "a", Handling: r.n, Attempt: 1, LockMS: 1000, AgeMS: 700})
		r.add(1502, Event{PID: 2, Kind: HandleEnd, ID: "a", Handling: r.n})
		r.add(fenceMS, Event{PID: 2, Kind: HandleFenced, ID: "a", Attempt: 1})
		return r.handled("a", 3, 2, againMS, againMS+2, 1000, false).check(t)
	}
	t.Run("after the lease", func(t *testing.T) {
		rep := fenced(1800, 1750)
		require.Equal(t, 1, rep.Fenced)
		require.Equal(t, 0, rep.FencedEarly)
		require.Equal(t, 1, rep.Attributable)
		require.Equal(t, map[string]int{CauseFenced: 1}, rep.ByCause)
		require.Contains(t, rep.Examples, "fenced a: attempt 1 in pid 2 (lock 1s), lock taken at T: started T+800ms, ended T+802ms, fence told at T+1.1s")
	})
	t.Run("told early", func(t *testing.T) {
		rep := fenced(1600, 1750) // before 1,700: the lock could still be valid
		require.Equal(t, 1, rep.FencedEarly)
		require.Equal(t, 1, rep.Unexpected)
	})
	t.Run("handed out again early", func(t *testing.T) {
		rep := fenced(1800, 1650)
		require.Equal(t, 0, rep.FencedEarly)
		require.Equal(t, 1, rep.Unexpected)
	})
	t.Run("no fence", func(t *testing.T) {
		r := newRun().enqueued("a")
		r.n++
		r.add(1500, Event{PID: 2, Kind: HandleStart, ID: "a", Handling: r.n, Attempt: 1, LockMS: 1000, AgeMS: 700})
		r.add(1502, Event{PID: 2, Kind: HandleEnd, ID: "a", Handling: r.n})
		rep := r.handled("a", 3, 2, 1750, 1752, 1000, false).check(t)
		require.Equal(t, 1, rep.Unexpected, "a lock that ran out explains nothing without the worker's word")
	})
}

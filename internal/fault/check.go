package fault

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The causes that make a duplicate attributable, as [Report.ByCause]
// counts them.
const (
	CauseKilled      = "killed"
	CauseRedis       = "redis"
	CauseStalled     = "stalled"
	CauseLockExpired = "lock-expired"
	CauseFenced      = "fenced"
	CauseError       = "error"
	CauseReEnqueued  = "re-enqueued"
)

// maxExamples bounds the examples a report quotes per category.
const maxExamples = 5

// Report is what [Check] finds in a run's histories.
//
// The definitions speak of handlings: a handling is a HandleStart event and
// the HandleEnd event with the same process and handling number, if any. A
// handling is completed when it has its end, and runs from its start until
// its end, or until its process is killed. An id's handlings are taken in
// the order of their starts.
//
// Whether a running handling h still held a valid lock at time t is
// presumed as follows, erring towards "not known":
//
//   - without renewal, until its lock deadline, start + 3/4 of its lock
//     time: the lock was taken when the poll ran, a little before the
//     handler started (with prefetching, a taken message waits at most a
//     quarter of its lock time for a handler, or is given back unstarted);
//   - with renewal (the start's Renew), for as long as h runs, unless a
//     proxy fault (a dropped or delayed reply) came after h's start, as
//     renewal may have failed then;
//   - in neither case if h's process stalled, or Redis was killed,
//     restarted, paused or resumed, between one lock time before h's start
//     and t: the reply of the poll that took the message may have been held
//     up meanwhile, its lock running.
type Report struct {
	// Attempted counts enqueue calls; Acked those that returned no error
	// (whatever the queue answered), AckedRefused those of them answered
	// with a refusal (for an id enqueued once, the sign of a resent call),
	// and Failed those that returned an error.
	Attempted, Acked, AckedRefused, Failed int
	// FailedButHandled counts ids whose every enqueue failed that were
	// handled all the same: the call failed, Redis had applied it.
	FailedButHandled int
	// Stray counts ids handled that were never enqueued (0 unless the
	// queue was shared).
	Stray int

	// Starts counts handling starts; Handled the ids with a completed
	// handling.
	Starts, Handled int

	// Lost counts ids with an acknowledged enqueue and no completed
	// handling.
	Lost int
	// Duplicated counts extra starts: an id started n > 1 times adds
	// n-1. DuplicatedIDs counts the ids.
	Duplicated, DuplicatedIDs int
	// Attributable counts the extra starts that something explains, and
	// ByCause by the first explanation found, in this order, for an extra
	// start s whose previous start (of the same id) is p:
	//   - killed: p's process was killed before s and after p started, or
	//     if p ended, after p ended (its outcome may not have been
	//     recorded);
	//   - redis: Redis was killed, restarted, paused or resumed between one
	//     lock time before p's start (the reply of the poll that took the
	//     message may have been held up that long) and s;
	//   - stalled: p's process stalled (a ProcessStalled event) some time
	//     between one lock time before p's start (the poll that took the
	//     message may have come that much earlier) and s;
	//   - lock-expired: p had no renewal, s came after p's lock deadline,
	//     and p ran past that deadline too (no end, or an end after it), so
	//     its outcome was fenced off;
	//   - fenced: p's outcome was fenced off (a HandleFenced event of its
	//     process: the worker found its lock run out when the outcome's
	//     call ran), and both s and that event came no sooner than p's
	//     lock could have run out ([Report.Fenced]);
	//   - error: p's handler returned an error (or a retry);
	//   - re-enqueued: the producer enqueued the id again between p's start
	//     and s.
	Attributable int
	ByCause      map[string]int
	// Unexpected counts the extra starts with no explanation.
	Unexpected int
	// Overlaps counts the extra starts made while an earlier handling of
	// the same id still ran and its lock was valid, as defined above.
	Overlaps int
	// Concurrent counts the extra starts made while an earlier handling
	// of the same id still ran, its lock valid or not (overlaps included):
	// two handlers at work on one message at once.
	Concurrent int

	// Fenced counts the handlings whose outcome their worker found fenced
	// off (HandleFenced events). When the lock a handling was handed out
	// with is known, by Redis's clock, it ran out no sooner than the id's
	// first enqueue attempt plus the handling's Message.Age (the poll that
	// took the lock) plus its lock time; FencedEarly counts the fenced
	// handlings whose worker told of the fence before then: an outcome
	// refused while its lock could still be valid, which the protocol
	// never allows (docs/protocol.md §7). A fence after that time is the
	// protocol at work: the lease ran out before the outcome was recorded
	// (a slow poll reply, a slow outcome call), and the message may be
	// handed out again.
	Fenced, FencedEarly int

	// AckedWhileFull counts enqueues attempted and acknowledged inside an
	// OOM window (between OOMBegin and OOMEnd).
	AckedWhileFull int

	// WorkerExits counts worker processes that stopped on SIGTERM and
	// wrote their counters; LockLost and Abandoned sum their
	// LockLost and Abandoned counters.
	WorkerExits         int
	LockLost, Abandoned int64

	// Hand-offs (a pipeline, WorkerSpec.Pipeline): Handoffs counts the ids
	// handled that a handling handed off (their starts name a Parent).
	// HandoffsLost counts the ids with a completed handling that hands
	// off but no hand-off of theirs ever handled; HandoffsDuplicated the
	// extra ids handed off by one id (an id with n > 1 adds n-1);
	// HandoffsReenqueued the extra first attempts of a handed-off id (a
	// hand-off enqueued again after it was handled: its attempt count
	// starts over).
	Handoffs, HandoffsLost, HandoffsDuplicated, HandoffsReenqueued int

	// Faults counts fault events by kind.
	Faults map[Kind]int

	// Examples quotes a few ids of each bad category, with what the
	// checker saw.
	Examples []string
}

// handling is one handling of an id, as the checker sees it.
type handling struct {
	start Event
	end   *Event
	fence *Event // its HandleFenced event, if any
}

func (h *handling) key() [2]int64 { return [2]int64{int64(h.start.PID), h.start.Handling} }

// deadline is h's lock deadline (see Report).
func (h *handling) deadline() time.Time {
	return h.start.Time.Add(h.start.LockTime() * 3 / 4)
}

// fenceKey names a handling by what a HandleFenced event tells of it.
type fenceKey struct {
	pid     int
	id      string
	attempt int
}

// lockSlack allows for the rounding of Redis's clock to the millisecond
// (the first-enqueue time and Message.Age) and for the two clocks (Redis's
// and each process's, the same machine's) reading a little apart.
const lockSlack = 5 * time.Millisecond

// checker holds a run's events, indexed.
type checker struct {
	kills       map[int][]time.Time // by pid
	stalls      map[int][]interval  // by pid
	redisFaults []time.Time
	netFaults   []time.Time
	attempts    map[string][]time.Time
}

// Check reads a run's events (as [ReadHistories] returns them, in time
// order) and reports the numbers defined on [Report].
func Check(events []Event) Report {
	r, c, order, acked := scan(events)
	return c.report(r, order, acked)
}

// scan indexes a run's events: the Report's counts of events, the checker,
// the handlings in the order of their starts, and the acknowledged ids.
func scan(events []Event) (r Report, c *checker, order []*handling, acked map[string]bool) {
	r = Report{ByCause: map[string]int{}, Faults: map[Kind]int{}}
	c = &checker{kills: map[int][]time.Time{}, stalls: map[int][]interval{}, attempts: map[string][]time.Time{}}
	acked = map[string]bool{}
	byKey := map[[2]int64]*handling{}
	type pidID struct {
		pid int
		id  string
	}
	lastAttempt := map[pidID]time.Time{}
	var oomSince *time.Time
	var fences []Event

	for _, e := range events {
		switch e.Kind {
		case EnqueueAttempt:
			r.Attempted++
			c.attempts[e.ID] = append(c.attempts[e.ID], e.Time)
			lastAttempt[pidID{e.PID, e.ID}] = e.Time
		case EnqueueAck:
			r.Acked++
			acked[e.ID] = true
			if e.Result != "added" && e.Result != "updated" {
				r.AckedRefused++
			}
			if a, ok := lastAttempt[pidID{e.PID, e.ID}]; ok && oomSince != nil && !a.Before(*oomSince) {
				r.AckedWhileFull++
			}
		case EnqueueFail:
			r.Failed++
		case HandleStart:
			h := &handling{start: e}
			byKey[h.key()] = h
			order = append(order, h)
		case HandleEnd:
			if h, ok := byKey[[2]int64{int64(e.PID), e.Handling}]; ok {
				h.end = &e
			}
		case HandleFenced:
			r.Fenced++
			fences = append(fences, e)
		case WorkerExit:
			r.WorkerExits++
			if e.Counts != nil {
				r.LockLost += e.Counts.LockLost
				r.Abandoned += e.Counts.Abandoned
			}
		case ProcessKilled:
			r.Faults[e.Kind]++
			c.kills[e.Target] = append(c.kills[e.Target], e.Time)
		case ProcessStalled:
			r.Faults[e.Kind]++
			from := e.Time.Add(-time.Duration(e.StallMS) * time.Millisecond)
			c.stalls[e.PID] = append(c.stalls[e.PID], interval{from, e.Time})
		case RedisKilled, RedisRestarted, RedisPaused, RedisResumed:
			r.Faults[e.Kind]++
			c.redisFaults = append(c.redisFaults, e.Time)
		case ProxyDrop, ProxyDelay:
			r.Faults[e.Kind]++
			c.netFaults = append(c.netFaults, e.Time)
		case OOMBegin:
			r.Faults[e.Kind]++
			t := e.Time
			oomSince = &t
		case OOMEnd:
			r.Faults[e.Kind]++
			oomSince = nil
		case ScriptFlush:
			r.Faults[e.Kind]++
		}
	}
	// A fence is told after its handling's start: match it to the last
	// start of the id's attempt in its process.
	last := map[fenceKey]*handling{}
	for _, h := range order {
		last[fenceKey{h.start.PID, h.start.ID, h.start.Attempt}] = h
	}
	for _, e := range fences {
		if h := last[fenceKey{e.PID, e.ID, e.Attempt}]; h != nil && h.fence == nil {
			h.fence = &e
		}
	}
	return r, c, order, acked
}

// lockRunsOut answers the time before which the lock h was handed out
// with cannot have run out (see Report.Fenced), and whether it is known:
// not for an id never enqueued by the producer (a hand-off).
func (c *checker) lockRunsOut(h *handling) (time.Time, bool) {
	at := c.attempts[h.start.ID]
	if len(at) == 0 {
		return time.Time{}, false
	}
	age := time.Duration(h.start.AgeMS) * time.Millisecond
	return at[0].Add(age + h.start.LockTime() - lockSlack), true
}

// report counts the rest of the Report's numbers from the handlings.
func (c *checker) report(r Report, order []*handling, acked map[string]bool) Report {
	byID := map[string][]*handling{}
	for _, h := range order {
		byID[h.start.ID] = append(byID[h.start.ID], h)
	}
	var lost, unexpected, overlaps, fenced []string
	for _, h := range order {
		if h.fence == nil {
			continue
		}
		if out, ok := c.lockRunsOut(h); ok && h.fence.Time.Before(out) {
			r.FencedEarly++
			fenced = append(fenced, "fenced early "+c.describeFence(h))
		} else if len(fenced) < maxExamples {
			fenced = append(fenced, "fenced "+c.describeFence(h))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(acked)) {
		if !slices.ContainsFunc(byID[id], func(h *handling) bool { return h.end != nil }) {
			r.Lost++
			lost = append(lost, fmt.Sprintf("lost %s: %d starts, none ended", id, len(byID[id])))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		hs := byID[id]
		r.Starts += len(hs)
		if slices.ContainsFunc(hs, func(h *handling) bool { return h.end != nil }) {
			r.Handled++
		}
		relayed := hs[0].start.Parent != "" // a hand-off: enqueued by a relay
		if !relayed && len(c.attempts[id]) == 0 {
			r.Stray++
		} else if !relayed && !acked[id] {
			r.FailedButHandled++
		}
		if len(hs) < 2 {
			continue
		}
		r.DuplicatedIDs++
		for k := 1; k < len(hs); k++ {
			r.Duplicated++
			s, p := hs[k], hs[k-1]
			if cause := c.explain(p, s); cause != "" {
				r.Attributable++
				r.ByCause[cause]++
			} else {
				r.Unexpected++
				unexpected = append(unexpected, "unexpected "+describe(p, s))
			}
			for _, h := range hs[:k] {
				if c.lockValid(h, s.start.Time) {
					r.Overlaps++
					overlaps = append(overlaps, "overlap "+describe(h, s))
					break
				}
			}
			if slices.ContainsFunc(hs[:k], func(h *handling) bool { return c.running(h, s.start.Time) }) {
				r.Concurrent++
			}
		}
	}
	handoffs := checkHandoffs(&r, byID)
	for _, xs := range [][]string{lost, unexpected, overlaps, fenced, handoffs} {
		r.Examples = append(r.Examples, xs[:min(len(xs), maxExamples)]...)
	}
	return r
}

// checkHandoffs counts the Handoffs numbers of r, and answers examples.
func checkHandoffs(r *Report, byID map[string][]*handling) []string {
	children := map[string]map[string]bool{}
	for id, hs := range byID {
		if p := hs[0].start.Parent; p != "" {
			r.Handoffs++
			if children[p] == nil {
				children[p] = map[string]bool{}
			}
			children[p][id] = true
			firsts := 0
			for _, h := range hs {
				if h.start.Attempt == 1 {
					firsts++
				}
			}
			if firsts > 1 {
				r.HandoffsReenqueued += firsts - 1
			}
		}
	}
	var bad []string
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		hs := byID[id]
		if !slices.ContainsFunc(hs, func(h *handling) bool { return h.start.HandsOff }) {
			continue
		}
		n := len(children[id])
		if n == 0 && slices.ContainsFunc(hs, func(h *handling) bool { return h.end != nil }) {
			r.HandoffsLost++
			bad = append(bad, fmt.Sprintf("hand-off lost: %s handled %d times, nothing it handed off handled", id, len(hs)))
		}
		if n > 1 {
			r.HandoffsDuplicated += n - 1
			bad = append(bad, fmt.Sprintf("hand-off duplicated: %s handed off %v", id, slices.Sorted(maps.Keys(children[id]))))
		}
	}
	return bad[:min(len(bad), maxExamples)]
}

// explain returns why s, a start of the id after p's, is explained, or ""
// (see Report.Attributable).
func (c *checker) explain(p, s *handling) string {
	ps, st := p.start.Time, s.start.Time
	from := ps
	if p.end != nil {
		from = p.end.Time
	}
	if within(c.kills[p.start.PID], from, st) {
		return CauseKilled
	}
	if within(c.redisFaults, ps.Add(-p.start.LockTime()), st) {
		return CauseRedis
	}
	if c.stalled(p, st) {
		return CauseStalled
	}
	if !p.start.Renew && !st.Before(p.deadline()) && (p.end == nil || !p.end.Time.Before(p.deadline())) {
		return CauseLockExpired
	}
	if p.fence != nil {
		if out, ok := c.lockRunsOut(p); ok && !st.Before(out) && !p.fence.Time.Before(out) {
			return CauseFenced
		}
	}
	if p.end != nil && p.end.Err != "" {
		return CauseError
	}
	if len(c.attempts[s.start.ID]) > 1 && within(c.attempts[s.start.ID], ps, st) {
		return CauseReEnqueued
	}
	return ""
}

// lockValid tells whether h ran at t with its lock still valid (see
// Report).
func (c *checker) lockValid(h *handling, t time.Time) bool {
	if !c.running(h, t) || c.stalled(h, t) {
		return false
	}
	// A Redis fault shortly before the start may have held back the
	// reply of the poll that took the message, with its lock running.
	if within(c.redisFaults, h.start.Time.Add(-h.start.LockTime()), t) {
		return false
	}
	if h.start.Renew {
		return !within(c.netFaults, h.start.Time, t)
	}
	return t.Before(h.deadline())
}

// running tells whether h ran at t: started, not ended, its process not
// killed.
func (c *checker) running(h *handling, t time.Time) bool {
	if t.Before(h.start.Time) || (h.end != nil && !h.end.Time.After(t)) {
		return false
	}
	return !within(c.kills[h.start.PID], h.start.Time, t)
}

// interval is a span of time, ends included.
type interval struct{ from, to time.Time }

// stalled tells whether h's process stalled between one lock time before
// h started and t.
func (c *checker) stalled(h *handling, t time.Time) bool {
	from := h.start.Time.Add(-h.start.LockTime())
	for _, s := range c.stalls[h.start.PID] {
		if !s.to.Before(from) && !s.from.After(t) {
			return true
		}
	}
	return false
}

// within tells whether any of times lies in [from, to].
func within(times []time.Time, from, to time.Time) bool {
	for _, t := range times {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// describe tells what the checker saw of two handlings of one id.
func describe(p, s *handling) string {
	end := "still running"
	if p.end != nil {
		end = fmt.Sprintf("ended %v after its start", p.end.Time.Sub(p.start.Time).Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: attempt %d in pid %d (lock %v, renew %v) %s; attempt %d in pid %d started %v after it",
		s.start.ID, p.start.Attempt, p.start.PID, p.start.LockTime(), p.start.Renew, end,
		s.start.Attempt, s.start.PID, s.start.Time.Sub(p.start.Time).Round(time.Millisecond))
}

// describeFence tells where the lease of a fenced handling went: from the
// earliest its lock can have been taken (the id's first enqueue attempt
// plus the handling's Message.Age) to its start, its end, and the fence.
func (c *checker) describeFence(h *handling) string {
	s := fmt.Sprintf("%s: attempt %d in pid %d (lock %v)", h.start.ID, h.start.Attempt, h.start.PID, h.start.LockTime())
	at := c.attempts[h.start.ID]
	if len(at) == 0 {
		return s + ", lock taken at an unknown time"
	}
	taken := at[0].Add(time.Duration(h.start.AgeMS) * time.Millisecond)
	since := func(t time.Time) time.Duration { return t.Sub(taken).Round(time.Millisecond) }
	s += fmt.Sprintf(", lock taken at T: started T+%v", since(h.start.Time))
	if h.end != nil {
		s += fmt.Sprintf(", ended T+%v", since(h.end.Time))
	}
	return s + fmt.Sprintf(", fence told at T+%v", since(h.fence.Time))
}

// String prints the report's numbers, for test logs.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lost %d, duplicated %d (%d ids), attributable %d, unexpected %d, overlaps %d (concurrent %d)\n",
		r.Lost, r.Duplicated, r.DuplicatedIDs, r.Attributable, r.Unexpected, r.Overlaps, r.Concurrent)
	fmt.Fprintf(&b, "  enqueues: %d attempted, %d acknowledged (%d answered with a refusal), %d failed; %d ids failed but handled; %d acknowledged while full\n",
		r.Attempted, r.Acked, r.AckedRefused, r.Failed, r.FailedButHandled, r.AckedWhileFull)
	fmt.Fprintf(&b, "  handlings: %d starts, %d ids handled, %d stray\n", r.Starts, r.Handled, r.Stray)
	if len(r.ByCause) > 0 {
		fmt.Fprintf(&b, "  attributed to: %s\n", joinCounts(r.ByCause))
	}
	if r.Handoffs > 0 || r.HandoffsLost > 0 {
		fmt.Fprintf(&b, "  hand-offs: %d handled, %d lost, %d duplicated, %d enqueued again\n",
			r.Handoffs, r.HandoffsLost, r.HandoffsDuplicated, r.HandoffsReenqueued)
	}
	fmt.Fprintf(&b, "  workers: %d exits, LockLost %d, Abandoned %d; %d outcomes fenced (%d early)\n",
		r.WorkerExits, r.LockLost, r.Abandoned, r.Fenced, r.FencedEarly)
	if len(r.Faults) > 0 {
		fmt.Fprintf(&b, "  faults: %s\n", joinCounts(r.Faults))
	}
	for _, x := range r.Examples {
		fmt.Fprintf(&b, "  %s\n", x)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func joinCounts[K ~string](m map[K]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// PeakRunning answers the most handlings that ran at once with a valid
// lock (as [Report] presumes it), over the whole run and per group: group
// names an id's group (a limit key, say), "" for none. A concurrency
// limit bounds these: a handling whose lock may have run out (its process
// stalled, Redis faulted since one lock time before it started, a reply
// lost while it renewed) is not counted, as its slot may rightly have been
// given to another.
func PeakRunning(events []Event, group func(id string) string) (peak int, byGroup map[string]int) {
	_, c, order, _ := scan(events)
	byGroup = map[string]int{}
	var running []*handling
	for _, s := range order {
		t := s.start.Time
		running = slices.DeleteFunc(append(running, s), func(h *handling) bool { return !c.running(h, t) })
		n, in := 0, map[string]int{}
		for _, h := range running {
			if c.lockValid(h, t) {
				n++
				if g := group(h.start.ID); g != "" {
					in[g]++
				}
			}
		}
		peak = max(peak, n)
		for g, k := range in {
			byGroup[g] = max(byGroup[g], k)
		}
	}
	return peak, byGroup
}

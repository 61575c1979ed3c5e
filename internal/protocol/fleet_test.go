package protocol

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The tests of mixed fleets (issue 22): this library's scripts and a
// Carmine worker on one queue. The Carmine side is carmineLua, an
// emulation of what Carmine's worker and enqueue write, step by step as
// docs/protocol.md §3, §4 and §6 and the shared SPEC describe Carmine's
// protocol; it is ours, not Carmine's code. Both sides read one virtual
// clock, so that a lock of an hour runs out when the test says so.

// clockKey holds the virtual clock in Unix ms. The fleet's scripts run on
// a single redis-server of their own, where a script may read a key it was
// not given.
const clockKey = "test:fleet:clock"

// serverNowLua is prelude.lua's server_now, which virtualScript replaces
// by a read of clockKey.
const serverNowLua = `local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end`

// virtualScript composes the script name as scripts.go does, reading now
// from clockKey instead of the server's TIME.
func virtualScript(t testing.TB, name string) *redis.Script {
	t.Helper()
	src := composeSource(scriptParts[name]...)
	require.Equal(t, 1, strings.Count(src, serverNowLua), "prelude.lua's server_now changed: update serverNowLua")
	return redis.NewScript(strings.Replace(src, serverNowLua,
		"local function server_now()\n  return tonumber(redis.call('get', '"+clockKey+"'))\nend", 1))
}

// carmineLua emulates Carmine's worker and producer over the queue's keys
// (KEYS in the order of internal/keys; only Carmine's fifteen are
// touched). ARGV[1] is the operation, ARGV[2] now in ms:
//
//	enqueue mid content init-backoff-ms lock-ms (0: none) can-update
//	        can-requeue reset-init-backoff ('1' or '0'): §3, answers the
//	        action or the refusal
//	poll    default-lock-ms: one step of §4, answers {kind, reason or mid}
//	outcome mid done ('1' or '0') backoff-ms: §6, as Carmine's worker
//	        writes it after its handler returns (its pipeline of HSET
//	        backoffs, SADD done, HDEL locks, here in one call)
//	view    : answers, for every id of messages, {id, status} by §2, and
//	        whether a Carmine poll would act on it now (hand it out,
//	        requeue or collect it) but this library's next poll cannot
//	        reach it: on neither list, and due and windows hold no entry
//	        for it at or before now; and the exact counts of §10 by
//	        status: {total, locked, backoff, done, queued}
const carmineLua = `
local MSGS, MSGS_RQ, LOCK_TIMES, LOCK_TIMES_RQ, UDTS, LOCKS, BACKOFFS, NATTEMPTS,
  DONE, REQUEUE, READY, CIRCLE, NDRY, SLEEP_A, SLEEP_B = unpack(KEYS, 1, 15)
local DUE, WINDOWS = KEYS[22], KEYS[23]
local op, now = ARGV[1], tonumber(ARGV[2])
local EOC = 'end-of-circle'

local function status_of(id)
  if redis.call('hexists', MSGS, id) == 0 then return 'nil', false, false end
  local lock = tonumber(redis.call('hget', LOCKS, id)) or 0
  local bo = tonumber(redis.call('hget', BACKOFFS, id)) or 0
  local rq = redis.call('hexists', MSGS_RQ, id) == 1 or redis.call('sismember', REQUEUE, id) == 1
  local base = 'queued'
  if redis.call('sismember', DONE, id) == 1 then
    base = 'done'
  elseif now < lock then
    base = 'locked'
  end
  return base, now < bo, rq
end

local function wake_sleeper()
  if not redis.call('rpoplpush', SLEEP_A, SLEEP_B) then
    if not redis.call('rpoplpush', SLEEP_B, SLEEP_A) then
      redis.call('lpush', SLEEP_A, '_')
    end
  end
end

if op == 'enqueue' then
  local id, content = ARGV[3], ARGV[4]
  local init_bo, lock_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
  local can_update, can_requeue, reset = ARGV[7] == '1', ARGV[8] == '1', ARGV[9] == '1'
  local function set_backoff()
    if init_bo > 0 then
      redis.call('hset', BACKOFFS, id, now + init_bo)
      return true
    end
    redis.call('hdel', BACKOFFS, id)
    return false
  end
  local function store()
    redis.call('hset', MSGS, id, content)
    redis.call('hsetnx', UDTS, id, now)
    if lock_ms > 0 then redis.call('hset', LOCK_TIMES, id, lock_ms) else redis.call('hdel', LOCK_TIMES, id) end
  end
  local function to_requeue(rq)
    if rq and not can_update then return 'already-queued' end
    redis.call('hset', MSGS_RQ, id, content)
    if lock_ms > 0 then redis.call('hset', LOCK_TIMES_RQ, id, lock_ms) else redis.call('hdel', LOCK_TIMES_RQ, id) end
    if rq then return 'updated' end
    return 'added'
  end
  local base, in_bo, rq = status_of(id)
  if base == 'nil' then
    if redis.call('exists', CIRCLE) == 0 then redis.call('lpush', CIRCLE, EOC) end
    if set_backoff() then redis.call('lpush', CIRCLE, id) else redis.call('lpush', READY, id) end
    store()
    wake_sleeper()
    return 'added'
  elseif base == 'queued' then
    if can_update then
      if reset then set_backoff() end
      store()
      return 'updated'
    elseif reset then
      set_backoff()
      return 'updated'
    end
    return 'already-queued'
  elseif base == 'locked' then
    if can_requeue then return to_requeue(rq) end
    return 'locked'
  elseif in_bo then
    if can_requeue then return to_requeue(rq) end
    return 'backoff'
  end
  redis.call('lpush', READY, id)
  wake_sleeper()
  return to_requeue(rq)

elseif op == 'poll' then
  local from = 'ready'
  local id = redis.call('rpoplpush', READY, CIRCLE)
  if not id then
    from = 'circle'
    id = redis.call('rpoplpush', CIRCLE, CIRCLE)
  end
  if (not id) or id == EOC then
    redis.call('incr', NDRY)
    return {'sleep', ''}
  end
  local base, in_bo, rq = status_of(id)
  if base == 'nil' then
    if from == 'circle' then
      redis.call('ltrim', CIRCLE, 1, -1)
      return {'skip', 'did-trim'}
    end
    return {'skip', 'unexpected'}
  elseif base == 'locked' then
    return {'skip', 'locked'}
  elseif in_bo then
    return {'skip', base .. '-with-backoff'}
  end
  redis.call('set', NDRY, 0)
  if base == 'done' and rq then
    local content = redis.call('hget', MSGS_RQ, id) or redis.call('hget', MSGS, id)
    local lock_ms = tonumber(redis.call('hget', LOCK_TIMES_RQ, id)) or tonumber(ARGV[3])
    redis.call('hset', MSGS, id, content)
    redis.call('hset', UDTS, id, now)
    redis.call('hset', LOCK_TIMES, id, lock_ms)
    redis.call('hdel', MSGS_RQ, id)
    redis.call('hdel', LOCK_TIMES_RQ, id)
    redis.call('hdel', NATTEMPTS, id)
    redis.call('srem', DONE, id)
    redis.call('srem', REQUEUE, id)
    redis.call('lpush', READY, id)
    return {'skip', 'did-requeue'}
  elseif base == 'done' then
    for _, k in ipairs({MSGS, MSGS_RQ, LOCK_TIMES, LOCK_TIMES_RQ, UDTS, LOCKS, BACKOFFS, NATTEMPTS}) do
      redis.call('hdel', k, id)
    end
    redis.call('srem', DONE, id)
    redis.call('srem', REQUEUE, id)
    if from == 'circle' then redis.call('ltrim', CIRCLE, 1, -1) end
    return {'skip', 'did-gc'}
  end
  local lock_ms = tonumber(redis.call('hget', LOCK_TIMES, id)) or tonumber(ARGV[3])
  redis.call('hset', LOCKS, id, now + lock_ms)
  redis.call('hincrby', NATTEMPTS, id, 1)
  return {'handle', id}

elseif op == 'outcome' then
  local id, done, bo = ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])
  if bo > 0 then redis.call('hset', BACKOFFS, id, now + bo) end
  if done then redis.call('sadd', DONE, id) end
  redis.call('hdel', LOCKS, id)
  return 'ok'

elseif op == 'view' then
  local on_list = {}
  for _, k in ipairs({READY, CIRCLE}) do
    for _, id in ipairs(redis.call('lrange', k, 0, -1)) do on_list[id] = true end
  end
  local counts = {0, 0, 0, 0, 0}
  local rows = {}
  for _, id in ipairs(redis.call('hkeys', MSGS)) do
    local base, in_bo, rq = status_of(id)
    local name = base
    if base == 'queued' and in_bo then name = 'queued-with-backoff'
    elseif base == 'locked' and rq then name = 'locked-with-requeue'
    elseif base == 'done' and rq then name = 'done-with-requeue'
    elseif base == 'done' and in_bo then name = 'done-with-backoff'
    elseif base == 'done' then name = 'done-awaiting-gc' end
    counts[1] = counts[1] + 1
    if base == 'locked' then counts[2] = counts[2] + 1
    elseif base == 'done' then counts[4] = counts[4] + 1
    elseif in_bo then counts[3] = counts[3] + 1
    else counts[5] = counts[5] + 1 end
    local stranded = 0
    if (base == 'queued' or base == 'done') and not in_bo and not on_list[id] then
      local due = tonumber(redis.call('zscore', DUE, id))
      local window = tonumber(redis.call('zscore', WINDOWS, id))
      if not ((due and due <= now) or (window and window <= now)) then stranded = 1 end
    end
    rows[#rows + 1] = {id, name, stranded}
  end
  return {counts, rows}
end
return redis.error_reply('unknown op ' .. tostring(op))
`

// fleet is one queue on a throwaway redis-server, shared by this
// library's scripts and an emulated Carmine worker, on a virtual clock.
type fleet struct {
	t    testing.TB
	ctx  context.Context
	rdb  *redis.Client
	q    string
	keys []string
	now  int64

	enqueueScript, dequeueScript, dequeueLeanScript, statusScript, carmine *redis.Script
}

func newFleet(t testing.TB, s *queuetest.Server, q string) *fleet {
	t.Helper()
	f := &fleet{t: t, ctx: context.Background(), rdb: s.RDB.(*redis.Client), q: q, keys: s.Keys(q),
		enqueueScript: virtualScript(t, "enqueue"), dequeueScript: virtualScript(t, "dequeue"),
		dequeueLeanScript: virtualScript(t, "dequeue-lean"),
		statusScript:      virtualScript(t, "msg-status"), carmine: redis.NewScript(carmineLua)}
	f.set(1_700_000_000_000)
	return f
}

// set and advance move the virtual clock.
func (f *fleet) set(ms int64) {
	f.t.Helper()
	f.now = ms
	require.NoError(f.t, f.rdb.Set(f.ctx, clockKey, ms, 0).Err())
}

func (f *fleet) advance(d time.Duration) { f.t.Helper(); f.set(f.now + d.Milliseconds()) }

// enqueue is this library's enqueue of one message (IndexOnly false: a
// Carmine worker shares the queue).
func (f *fleet) enqueue(m EnqueueMessage) (Code, error) {
	call := EnqueueCall{Token: randomToken(), Keep: time.Minute, Messages: []EnqueueMessage{m}}
	reply, err := f.enqueueScript.Run(f.ctx, f.rdb, f.keys, call.argv()...).StringSlice()
	a := enqueueAnswer(call, reply, err)
	if a.Err != nil {
		return "", a.Err
	}
	return a.Codes[0], nil
}

func (f *fleet) mustEnqueue(m EnqueueMessage) {
	f.t.Helper()
	code, err := f.enqueue(m)
	require.NoError(f.t, err)
	require.Contains(f.t, []Code{Added, Updated}, code)
}

// poll is one poll call of this library by a poller of its own, lean as
// a client's first call on the queue (§4), sent again with every key
// when refused for want of them.
func (f *fleet) poll(a PollArgs) (PollReply, error) {
	a.Poller, a.Seq, a.Confirmed = randomToken(), 1, 0
	ks, first := withInScriptKeys(f.keys[:LeanKeys:LeanKeys], a.Completions)
	raw, err := f.dequeueLeanScript.Run(f.ctx, f.rdb, ks, a.argv(ks, first)...).Slice()
	if ErrorCode(err) == NeedKeys {
		ks, first = withInScriptKeys(f.keys, a.Completions)
		raw, err = f.dequeueScript.Run(f.ctx, f.rdb, ks, a.argv(ks, first)...).Slice()
	}
	if err != nil {
		return PollReply{}, err
	}
	return parsePollReply(raw)
}

func (f *fleet) mustPoll(a PollArgs) PollReply {
	f.t.Helper()
	if a.LockTime == 0 {
		a.LockTime = time.Minute
	}
	if a.Sleeps == [5]time.Duration{} {
		a.Sleeps = testSleeps
	}
	r, err := f.poll(a)
	require.NoError(f.t, err)
	return r
}

// lap polls as this library's worker does until a sleep step: it answers
// the messages handed out.
func (f *fleet) lap() []Step {
	f.t.Helper()
	var handed []Step
	for range 100 {
		r := f.mustPoll(PollArgs{MaxSteps: 100})
		for _, s := range r.Steps {
			if s.Kind == StepHandle {
				handed = append(handed, s)
			}
		}
		if n := len(r.Steps); n > 0 && r.Steps[n-1].Kind == StepSleep {
			return handed
		}
	}
	f.t.Fatal("a lap never ended")
	return nil
}

// complete records outcomes of this library's handlings.
func (f *fleet) complete(cs ...Completion) []bool {
	f.t.Helper()
	r := f.mustPoll(PollArgs{Completions: cs})
	return r.Recorded
}

// carmineEnqueue is Carmine's enqueue (lockMS 0: none).
func (f *fleet) carmineEnqueue(id, content string, initBackoff, lockMS int64, canUpdate, canRequeue, reset bool) string {
	f.t.Helper()
	s, err := f.carmine.Run(f.ctx, f.rdb, f.keys, "enqueue", f.now, id, content, initBackoff, lockMS,
		boolArg(canUpdate), boolArg(canRequeue), boolArg(reset)).Text()
	require.NoError(f.t, err)
	return s
}

// carminePoll is one step of Carmine's poll: its kind and its reason or
// the id handed out.
func (f *fleet) carminePoll(defaultLockMS int64) (string, string) {
	f.t.Helper()
	r, err := f.carmine.Run(f.ctx, f.rdb, f.keys, "poll", f.now, defaultLockMS).StringSlice()
	require.NoError(f.t, err)
	return r[0], r[1]
}

// carmineHandle runs Carmine's poll until it hands out a message or
// sleeps twice in a row, and answers the id handed out ("" for none).
func (f *fleet) carmineHandle(defaultLockMS int64) string {
	f.t.Helper()
	sleeps := 0
	for range 1000 {
		kind, what := f.carminePoll(defaultLockMS)
		switch kind {
		case "handle":
			return what
		case "sleep":
			if sleeps++; sleeps == 2 {
				return ""
			}
		default:
			sleeps = 0
		}
	}
	return ""
}

// carmineOutcome writes a Carmine handler's outcome: done for :success
// and :error, not done for :retry, with a backoff in ms or 0.
func (f *fleet) carmineOutcome(id string, done bool, backoffMS int64) {
	f.t.Helper()
	require.NoError(f.t, f.carmine.Run(f.ctx, f.rdb, f.keys, "outcome", f.now, id, boolArg(done), backoffMS).Err())
}

// fleetView is what the emulation reads of the queue (carmineLua's view).
type fleetView struct {
	counts   Counts            // exact, by status
	status   map[string]string // id -> status of §2
	stranded []string          // ids Carmine would act on now that this library's next poll cannot reach
}

func (f *fleet) view() fleetView {
	f.t.Helper()
	raw, err := f.carmine.Run(f.ctx, f.rdb, f.keys, "view", f.now).Slice()
	require.NoError(f.t, err)
	c := raw[0].([]any)
	n := func(i int) int64 { return c[i].(int64) }
	v := fleetView{counts: Counts{Total: n(0), Locked: n(1), Backoff: n(2), Done: n(3), Queued: n(4)},
		status: map[string]string{}}
	for _, r := range raw[1].([]any) {
		row := r.([]any)
		id := row[0].(string)
		v.status[id] = row[1].(string)
		if row[2].(int64) == 1 {
			v.stranded = append(v.stranded, id+" ("+row[1].(string)+")")
		}
	}
	return v
}

// ourStatuses reads the statuses of ids as msg-status.lua answers them.
func (f *fleet) ourStatuses(ids []string) map[string]string {
	f.t.Helper()
	args := make([]any, 0, 1+len(ids))
	args = append(args, "") // the status alone: no content, no dead letter
	for _, id := range ids {
		args = append(args, id)
	}
	raw, err := f.statusScript.Run(f.ctx, f.rdb, f.keys, args...).Slice()
	require.NoError(f.t, err)
	out := map[string]string{}
	for i, id := range ids {
		name := raw[i+1].([]any)[0].(string)
		if name != "" {
			out[id] = name
		}
	}
	return out
}

// counts reads QueueCounts (it reads no clock).
func (f *fleet) counts() Counts {
	f.t.Helper()
	c, err := QueueCounts(f.ctx, f.rdb, f.keys)
	require.NoError(f.t, err)
	c.Dead, c.Paused = 0, false
	return c
}

// handedIDs lists the ids of steps.
func handedIDs(steps []Step) []string {
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.ID)
	}
	return ids
}

// fleetServer is a throwaway redis-server for one fleet test.
func fleetServer(t *testing.T) *queuetest.Server {
	t.Helper()
	t.Parallel()
	return queuetest.RealServer(t)
}

// TestFleetCarmineOutcomeOnIndexedLock, issue 22 item 1: a message a
// Carmine worker holds stays on mid-circle through this library's laps,
// so that when the Carmine worker answers (retry without backoff, or
// success with a requeue pending) the next poll hands it out, not the
// Carmine lock's expiry.
func TestFleetCarmineOutcomeOnIndexedLock(t *testing.T) {
	s := fleetServer(t)
	for _, tc := range []struct {
		name    string
		outcome func(f *fleet)
	}{
		{"retry", func(f *fleet) { f.carmineOutcome("x", false, 0) }},
		{"success, requeue pending", func(f *fleet) {
			require.Equal(t, "added", f.carmineEnqueue("x", "again", 0, 0, false, true, false))
			f.carmineOutcome("x", true, 0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, s, queuetest.QueueName(t))
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), InitialBackoff: 100 * time.Millisecond})
			f.advance(200 * time.Millisecond)
			require.Equal(t, "x", f.carmineHandle(60000), "a Carmine worker takes it, for 60 s")
			f.lap() // wakes its due entry: due again at the Carmine lock's expiry
			f.lap() // meets it on the circle
			f.advance(time.Second)
			tc.outcome(f)
			require.Empty(t, f.view().stranded)
			handed := f.lap()
			require.Equal(t, []string{"x"}, handedIDs(handed), "handed out now, not when the Carmine lock would have run out")
		})
	}
}

// TestFleetCarmineResetOfIndexedBackoff, issue 22 item 2: a Carmine
// enqueue that resets the backoff of a message this library indexed (it
// writes backoffs alone) is seen by the next lap.
func TestFleetCarmineResetOfIndexedBackoff(t *testing.T) {
	s := fleetServer(t)
	for _, tc := range []struct {
		name  string
		delay func(f *fleet)
	}{
		{"delayed enqueue", func(f *fleet) {
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), InitialBackoff: 10 * time.Second})
		}},
		{"retry with a backoff", func(f *fleet) {
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
			h := f.lap()
			require.Len(t, h, 1)
			require.Equal(t, []bool{true}, f.complete(Completion{ID: "x", LockedUntil: h[0].LockedUntil,
				Outcome: OutcomeRetry, Backoff: 10 * time.Second}))
		}},
		{"reset of a lock that ran out", func(f *fleet) {
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
			require.Len(t, f.lap(), 1)
			f.advance(2 * time.Minute) // the lock runs out, no poll yet
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), CanUpdate: true, ResetInitialBackoff: true,
				InitialBackoff: 10 * time.Second})
		}},
		{"reset to none, then to a backoff, of a lock that ran out", func(f *fleet) {
			// The first reset takes the lock back and leaves the message
			// due now, on no list; the second puts it in backoff
			// (TestFleetRandom, seed 1796585315634013713).
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
			require.Len(t, f.lap(), 1)
			f.advance(2 * time.Minute)
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), CanUpdate: true, ResetInitialBackoff: true})
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), ResetInitialBackoff: true,
				InitialBackoff: 10 * time.Second})
		}},
		{"Carmine's reset of a lock that ran out", func(f *fleet) {
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
			require.Len(t, f.lap(), 1)
			f.advance(2 * time.Minute)
			require.Equal(t, "updated", f.carmineEnqueue("x", "x", 10000, 0, false, false, true))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, s, queuetest.QueueName(t))
			tc.delay(f)
			for range 2 { // the second lap meets it, wherever the first left it
				require.Empty(t, f.lap(), "in backoff")
			}
			f.advance(time.Millisecond)
			require.Equal(t, "updated", f.carmineEnqueue("x", "x", 0, 0, false, false, true), "Carmine's reset")
			v := f.view()
			require.Equal(t, "queued", v.status["x"])
			require.Empty(t, v.stranded)
			require.Equal(t, []string{"x"}, handedIDs(f.lap()), "handed out now, not when the old backoff ends")
		})
	}
}

// TestFleetCountsAfterReset, issue 22 item 3: a reset of the backoff of a
// message whose lock ran out leaves no lock entry behind once a poll ran,
// whether this library's enqueue or Carmine's reset it.
func TestFleetCountsAfterReset(t *testing.T) {
	s := fleetServer(t)
	for _, carmine := range []bool{false, true} {
		t.Run(fmt.Sprintf("carmine=%v", carmine), func(t *testing.T) {
			f := newFleet(t, s, queuetest.QueueName(t))
			f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
			require.Len(t, f.lap(), 1)
			f.advance(2 * time.Minute) // its worker died: the lock ran out
			if carmine {
				require.Equal(t, "updated", f.carmineEnqueue("x", "x", 3600000, 0, true, false, true))
			} else {
				f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), CanUpdate: true, ResetInitialBackoff: true,
					InitialBackoff: time.Hour})
			}
			require.Empty(t, f.lap())
			want := Counts{Total: 1, Backoff: 1}
			require.Equal(t, want, f.view().counts)
			require.Equal(t, want, f.counts())
		})
	}
}

// TestFleetResetWakes, issue 22 item 4: this library's reset of a queued
// message's backoff does a little more than Carmine's, on purpose
// (docs/protocol.md §3): a reset that makes the message due before every
// other due entry (always so when it removes the backoff) moves the sleep
// sentinel, so that a worker of this library asleep at the end of the
// queue (its sleep shortened to the earliest due entry at the time) wakes
// and hands the message out at its new time rather than after its sleep;
// Carmine's own workers never really sleep (§5). A reset to a later time
// wakes nobody, and no reset pushes the id onto a list: the due entry
// brings it back. A Carmine reset writes the backoff alone, and the
// message is found on mid-circle.
func TestFleetResetWakes(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	ctx := context.Background()
	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), InitialBackoff: time.Hour})
	r := f.mustPoll(PollArgs{MaxSteps: 10})
	sleep := r.Steps[len(r.Steps)-1]
	require.Equal(t, StepSleep, sleep.Kind)
	empty := f.keys[sleepListIndex(sleep.SleepList)]
	n, err := f.rdb.LLen(ctx, empty).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the list the worker sleeps on is empty")

	// Later than the earliest due entry (its own, an hour away): nobody
	// wakes.
	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), ResetInitialBackoff: true, InitialBackoff: 2 * time.Hour})
	n, err = f.rdb.LLen(ctx, empty).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a reset to later wakes nobody")

	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), ResetInitialBackoff: true})
	n, err = f.rdb.LLen(ctx, empty).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the sentinel moved there: the sleeper wakes")
	ready, err := f.rdb.LLen(ctx, f.keys[10]).Result()
	require.NoError(t, err)
	require.Zero(t, ready, "no push onto mids-ready: the due entry brings it back")
	require.Equal(t, []string{"x"}, handedIDs(f.lap()))

	// Carmine's reset writes the backoff alone; the message is found on
	// the circle.
	f.mustEnqueue(EnqueueMessage{ID: "y", Data: []byte("y"), InitialBackoff: time.Hour})
	require.Empty(t, f.lap())
	sleepers := func() []int64 {
		a, err := f.rdb.LLen(ctx, f.keys[13]).Result()
		require.NoError(t, err)
		b, err := f.rdb.LLen(ctx, f.keys[14]).Result()
		require.NoError(t, err)
		return []int64{a, b}
	}
	before := sleepers()
	require.Equal(t, "updated", f.carmineEnqueue("y", "y", 0, 0, false, false, true))
	require.Equal(t, before, sleepers(), "Carmine's reset wakes nobody")
	require.Equal(t, []string{"y"}, handedIDs(f.lap()))
}

// sleepListIndex is the position of isleep-a or isleep-b among a queue's
// keys.
func sleepListIndex(list string) int {
	if list == "a" {
		return 13
	}
	return 14
}

// TestFleetCarmineWindowsCountOnce, issue 22 item 5: dedupe windows a
// Carmine worker wrote count once, as done, before any lap of this
// library met them.
func TestFleetCarmineWindowsCountOnce(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	for i := range 40 {
		id := "w" + strconv.Itoa(i)
		require.Equal(t, "added", f.carmineEnqueue(id, "w", 0, 0, false, false, false))
		require.Equal(t, id, f.carmineHandle(60000))
		f.carmineOutcome(id, true, 3600000)
	}
	for range 30 {
		f.mustEnqueue(EnqueueMessage{ID: randomToken(), Data: []byte("n")})
	}
	want := Counts{Total: 70, Done: 40, Queued: 30}
	require.Equal(t, want, f.view().counts)
	require.Equal(t, want, f.counts(), "no worker of this library ran")
	r := f.mustPoll(PollArgs{WantSize: true})
	require.Equal(t, int64(30), r.QueueSize, "the poll's queue size")
}

// TestFleetUnknownOutcome, issue 22 item 6: an outcome the scripts do
// not know fails the call with MQOUTCOME, and nothing of the call is
// written, not even the known outcomes before it.
func TestFleetUnknownOutcome(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
	f.mustEnqueue(EnqueueMessage{ID: "y", Data: []byte("y")})
	h := f.lap()
	require.Len(t, h, 2)
	_, err := f.poll(PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 10, Completions: []Completion{
		{ID: h[0].ID, LockedUntil: h[0].LockedUntil, Outcome: OutcomeSuccess},
		{ID: h[1].ID, LockedUntil: h[1].LockedUntil, Outcome: "succes"},
	}})
	require.Error(t, err)
	require.Equal(t, BadOutcome, ErrorCode(err))
	require.Contains(t, err.Error(), `unknown outcome "succes"`)
	require.Equal(t, map[string]string{"x": "locked", "y": "locked"}, f.ourStatuses([]string{"x", "y"}), "nothing written")
	require.Equal(t, []bool{true, true}, f.complete(
		Completion{ID: h[0].ID, LockedUntil: h[0].LockedUntil, Outcome: OutcomeSuccess},
		Completion{ID: h[1].ID, LockedUntil: h[1].LockedUntil, Outcome: OutcomeSuccess}))
}

// TestFleetIndexOnly: with IndexOnly (Config.NoCarmineWorkers) a message
// waiting out a backoff waits in due alone: a retry with a backoff leaves
// it off mid-circle, and a poll that meets one there drops it; without,
// both keep it on the circle (TestFleetCarmineResetOfIndexedBackoff).
func TestFleetIndexOnly(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	circle := func() []string {
		l, err := f.rdb.LRange(f.ctx, f.keys[11], 0, -1).Result()
		require.NoError(t, err)
		return l
	}
	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x")})
	f.mustEnqueue(EnqueueMessage{ID: "y", Data: []byte("y"), InitialBackoff: time.Hour}) // on the circle: IndexOnly is the enqueue's own flag
	r := f.mustPoll(PollArgs{MaxSteps: 10, IndexOnly: true})
	require.Equal(t, StepHandle, r.Steps[0].Kind)
	require.Equal(t, []bool{true}, f.mustPoll(PollArgs{IndexOnly: true, Completions: []Completion{
		{ID: "x", LockedUntil: r.Steps[0].LockedUntil, Outcome: OutcomeRetry, Backoff: time.Hour}}}).Recorded)
	require.NotContains(t, circle(), "x", "the retry left it off the circle")
	require.Contains(t, circle(), "y")
	for range 2 {
		f.mustPoll(PollArgs{MaxSteps: 10, IndexOnly: true})
	}
	require.Equal(t, []string{EndOfCircle}, circle(), "both wait in due alone")
	n, err := f.rdb.ZCard(f.ctx, f.keys[21]).Result()
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
}

// TestFleetCarmineCollectionLeavesNoMetadata: a Carmine worker collects
// an id without this library's keys, so its metadata stays in meta; a
// later enqueue of the id without metadata must not hand the message out
// with the old one (docs/protocol.md §13).
func TestFleetCarmineCollectionLeavesNoMetadata(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x"), Metadata: []byte(`{"traceparent":"old"}`)})
	require.Equal(t, "x", f.carmineHandle(60000))
	f.carmineOutcome("x", true, 0)
	require.Empty(t, f.carmineHandle(60000), "collected by Carmine's lap")
	require.Empty(t, f.ourStatuses([]string{"x"}), "gone")

	f.mustEnqueue(EnqueueMessage{ID: "x", Data: []byte("x2")})
	h := f.lap()
	require.Len(t, h, 1)
	require.Equal(t, "x2", string(h[0].Data))
	require.Empty(t, h[0].Metadata, "no metadata of the message before")
}

// TestFleetCarmineWindowsCountMany: the exact count of Carmine's dedupe
// windows reads done a thousand ids at a time, up to 10,000 ids for
// QueueCounts; the poll's often sampled queue size reads it only while
// done holds at most 100 ids, and beyond subtracts this library's windows
// alone (docs/protocol.md §10).
func TestFleetCarmineWindowsCountMany(t *testing.T) {
	s := fleetServer(t)
	f := newFleet(t, s, queuetest.QueueName(t))
	const n = 2500
	_, err := f.rdb.TxPipelined(f.ctx, func(p redis.Pipeliner) error {
		for i := range n {
			id := "w" + strconv.Itoa(i)
			p.HSet(f.ctx, f.keys[keys.Messages], id, "")
			p.SAdd(f.ctx, f.keys[keys.Done], id)
			p.HSet(f.ctx, f.keys[keys.Backoffs], id, f.now+3600000)
		}
		return nil
	})
	require.NoError(t, err)
	for range 30 {
		f.mustEnqueue(EnqueueMessage{ID: randomToken(), Data: []byte("n")})
	}
	require.Equal(t, Counts{Total: n + 30, Done: n, Queued: 30}, f.counts())
	r := f.mustPoll(PollArgs{WantSize: true})
	require.Zero(t, r.QueueSize, "beyond 100 done ids the poll's size is Carmine's formula")
}

package main

// sys_carmine.go: a driver that speaks Carmine's queue protocol
// (docs/protocol.md §1 to §6) with the round trips Carmine's own
// worker makes, so that the bench compares our batched protocol with
// Carmine's one-step-per-call one. It is written here from the spec; the
// Lua is ours.
//
// What it sends, per message:
//   - enqueue: one EVALSHA of the enqueue script (section 3). enqueueBatch
//     pipelines those calls: Carmine has no batch API, and a pipeline is the
//     best a Carmine user can do.
//   - worker, each loop turn: one pipeline (one round trip) of EVALSHA of
//     the poll script for ONE step (section 4, "now" from the client's
//     clock, as Carmine passes it), GET ndry-runs, and the five queue-count
//     reads Carmine's loop feeds its monitor (HLEN locks, HLEN backoffs,
//     LLEN mids-ready, LLEN mid-circle, SCARD done). A message takes one
//     turn to be handed out and another, on a later lap, to be collected.
//   - completion, after the handler returns: one pipeline of SADD done mid
//     and HDEL locks mid (section 6; Carmine pipelines these without
//     MULTI).
//
// Settings, chosen so the comparison is about round trips and not about
// Carmine's pacing: one polling loop (Carmine's worker-threads default),
// `handlers` handler goroutines, no throttle (Carmine's :auto throttle caps
// a worker near 5 messages a second), the default 60-minute lock, and
// Carmine's default end-of-queue sleeps, exp-backoff(0..4) with ±20%
// jitter, taken as the interruptible sleep of section 5: a BLMOVE on the
// list that does not hold the sentinel, so an enqueue wakes the sleeper.
//
// Two departures from Carmine's worker, both about sleeping, not round
// trips per message:
//   - Carmine's poll script names the list that holds the sentinel, so its
//     blocking call returns at once and an idle Carmine worker spins; we
//     name the empty one, as docs/protocol.md §5 says.
//   - Carmine hands every poll reply, sleeps included, to its handler pool,
//     and its loop only waits for a free handler. With a sleep that really
//     sleeps, a sleep reply polled before a wake-up would then hold the
//     (single) handler for the full sleep. Here the loop sleeps itself and
//     only "handle" replies go to the handlers; the loop still polls the
//     next step while the handlers run, and waits for a free handler before
//     handing a message over, as Carmine's pool does.

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// carmineKeys are the suffixes of a queue's keys (docs/protocol.md §1), passed to
// both scripts as KEYS[1..15] in this order.
var carmineKeys = []string{
	"messages", "messages-rq", "lock-times", "lock-times-rq", "udts", "locks",
	"backoffs", "nattempts", "done", "requeue", "mids-ready", "mid-circle",
	"ndry-runs", "isleep-a", "isleep-b",
}

// Indexes into carmineKeys of the keys the Go side reads or writes itself.
const (
	ckMessages  = 0
	ckLocks     = 5
	ckBackoffs  = 6
	ckDone      = 8
	ckMidsReady = 10
	ckMidCircle = 11
	ckNdryRuns  = 12
	ckIsleepA   = 13
	ckIsleepB   = 14
)

// carmineStatusLua opens both scripts: it names the keys and computes a
// message's status (docs/protocol.md §2). ARGV[1] is now, in Unix ms.
const carmineStatusLua = `
local messages, messages_rq, lock_times, lock_times_rq, udts, locks, backoffs,
  nattempts, done, requeue, mids_ready, mid_circle, ndry_runs, isleep_a, isleep_b = unpack(KEYS)
local now = tonumber(ARGV[1])

-- status answers mid's base status ('nil', 'done', 'locked' or 'queued'),
-- whether it is in backoff, and whether a requeue is pending.
local function status(mid)
  if redis.call('hexists', messages, mid) == 0 then return 'nil', false, false end
  local bo = now < (tonumber(redis.call('hget', backoffs, mid)) or 0)
  local rq = redis.call('hexists', messages_rq, mid) == 1 or redis.call('sismember', requeue, mid) == 1
  if redis.call('sismember', done, mid) == 1 then return 'done', bo, rq end
  if now < (tonumber(redis.call('hget', locks, mid)) or 0) then return 'locked', bo, rq end
  return 'queued', bo, rq
end
`

// carmineEnqueueLua is the enqueue of docs/protocol.md §3.
// ARGV: now, mid, content, init backoff ms (0: none), lock ms (0: the
// worker's), then can-update, can-requeue, reset-init-backoff as '1'/'0'.
// Reply: 'added' or 'updated', or 'already-queued', 'locked' or 'backoff'.
const carmineEnqueueLua = `
local mid, content = ARGV[2], ARGV[3]
local init_bo, lock_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local can_update, can_requeue, reset_bo = ARGV[6] == '1', ARGV[7] == '1', ARGV[8] == '1'

local function set_lock_time(key)
  if lock_ms > 0 then redis.call('hset', key, mid, lock_ms) else redis.call('hdel', key, mid) end
end
local function store()
  redis.call('hset', messages, mid, content)
  redis.call('hsetnx', udts, mid, now)
  set_lock_time(lock_times)
end
local function set_init_backoff()
  if init_bo > 0 then redis.call('hset', backoffs, mid, now + init_bo) else redis.call('hdel', backoffs, mid) end
end
-- wake moves the sleep sentinel to the other list (creating it the first
-- time), which wakes one worker blocked on that list.
local function wake()
  if not redis.call('rpoplpush', isleep_a, isleep_b) then
    if not redis.call('rpoplpush', isleep_b, isleep_a) then redis.call('lpush', isleep_a, '_') end
  end
end
local function to_requeue(pending)
  if pending and not can_update then return 'already-queued' end
  redis.call('hset', messages_rq, mid, content)
  set_lock_time(lock_times_rq)
  if pending then return 'updated' end
  return 'added'
end

local base, bo, rq = status(mid)
if base == 'nil' then
  if redis.call('exists', mid_circle) == 0 then redis.call('lpush', mid_circle, 'end-of-circle') end
  set_init_backoff()
  if init_bo > 0 then redis.call('lpush', mid_circle, mid) else redis.call('lpush', mids_ready, mid) end
  store()
  wake()
  return 'added'
elseif base == 'queued' then
  if can_update then
    if reset_bo then set_init_backoff() end
    store()
    return 'updated'
  elseif reset_bo then
    set_init_backoff()
    return 'updated'
  end
  return 'already-queued'
elseif base == 'locked' then
  if can_requeue then return to_requeue(rq) end
  return 'locked'
elseif bo then -- done, in backoff
  if can_requeue then return to_requeue(rq) end
  return 'backoff'
end
-- done, not in backoff: the next time a worker reaches it, it is requeued
redis.call('lpush', mids_ready, mid)
wake()
return to_requeue(rq)
`

// carminePollLua is one worker step of docs/protocol.md §4.
// ARGV: now, default lock ms, then the five end-of-queue sleep times in ms.
// Reply: {'sleep', 'end-of-circle', list to block on ('a' or 'b'), ms},
// {'skip', reason} or {'handle', mid, content, attempt, lock ms,
// first-enqueued ms}.
const carminePollLua = `
local mid, src = redis.call('rpoplpush', mids_ready, mid_circle), 'ready'
if not mid then mid, src = redis.call('rpoplpush', mid_circle, mid_circle), 'circle' end

if (not mid) or mid == 'end-of-circle' then
  local n = tonumber(redis.call('get', ndry_runs)) or 0
  redis.call('incr', ndry_runs)
  local list = 'a'
  if redis.call('llen', isleep_a) > 0 then list = 'b' end
  return {'sleep', 'end-of-circle', list, tonumber(ARGV[2 + math.min(5, n + 1)])}
end

local base, bo, rq = status(mid)
if base == 'nil' then
  if src == 'circle' then
    redis.call('ltrim', mid_circle, 1, -1)
    return {'skip', 'did-trim'}
  end
  return {'skip', 'unexpected'}
elseif base == 'locked' then
  return {'skip', 'locked'}
elseif bo then
  return {'skip', base .. '-with-backoff'}
end

redis.call('set', ndry_runs, 0) -- useful work from here on

if base == 'done' then
  if rq then
    local content = redis.call('hget', messages_rq, mid) or redis.call('hget', messages, mid)
    redis.call('hset', messages, mid, content)
    redis.call('hset', udts, mid, now)
    redis.call('hset', lock_times, mid, redis.call('hget', lock_times_rq, mid) or ARGV[2])
    redis.call('hdel', messages_rq, mid)
    redis.call('hdel', lock_times_rq, mid)
    redis.call('hdel', nattempts, mid)
    redis.call('srem', done, mid)
    redis.call('srem', requeue, mid)
    redis.call('lpush', mids_ready, mid)
    return {'skip', 'did-requeue'}
  end
  for _, k in ipairs({messages, messages_rq, lock_times, lock_times_rq, udts, locks, backoffs, nattempts}) do
    redis.call('hdel', k, mid)
  end
  redis.call('srem', done, mid)
  redis.call('srem', requeue, mid)
  if src == 'circle' then redis.call('ltrim', mid_circle, 1, -1) end
  return {'skip', 'did-gc'}
end

-- queued, not in backoff, lock absent or expired: hand it out
local lock_ms = tonumber(redis.call('hget', lock_times, mid)) or tonumber(ARGV[2])
redis.call('hset', locks, mid, now + lock_ms)
local attempt = redis.call('hincrby', nattempts, mid, 1)
return {'handle', mid, redis.call('hget', messages, mid), attempt, lock_ms,
  tonumber(redis.call('hget', udts, mid)) or 0}
`

var (
	carmineEnqueue = redis.NewScript(carmineStatusLua + carmineEnqueueLua)
	carminePoll    = redis.NewScript(carmineStatusLua + carminePollLua)
)

// carmineLockMs is Carmine's default lock time, 60 minutes.
const carmineLockMs = 60 * 60 * 1000

type carmineSystem struct {
	rdb  *redis.Client
	opt  *redis.Options
	keys []string // carmine:mq:<queue>:<suffix>, in carmineKeys order
}

func init() {
	systems["carmine"] = func(ctx context.Context, addr, queue string) (system, error) {
		opt := &redis.Options{Addr: addr}
		s := &carmineSystem{rdb: redis.NewClient(opt), opt: opt}
		for _, k := range carmineKeys {
			s.keys = append(s.keys, "carmine:mq:"+queue+":"+k)
		}
		if err := s.loadScripts(ctx); err != nil {
			s.rdb.Close()
			return nil, err
		}
		return s, nil
	}
}

// loadScripts puts both scripts in Redis's script cache, so that the
// EVALSHA calls queued in pipelines find them.
func (s *carmineSystem) loadScripts(ctx context.Context) error {
	if err := carmineEnqueue.Load(ctx, s.rdb).Err(); err != nil {
		return err
	}
	return carminePoll.Load(ctx, s.rdb).Err()
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

// enqueueArgs are the enqueue script's arguments for a new message with a
// random mid and no options but an initial backoff (none when 0), as
// Carmine's enqueue sends them.
func (s *carmineSystem) enqueueArgs(p []byte, backoff time.Duration) []any {
	return []any{time.Now().UnixMilli(), uuid.NewString(), p, backoff.Milliseconds(), 0, "0", "0", "0"}
}

// enqueued turns an enqueue reply into an error. A refusal is a normal
// answer in Carmine, but in the bench it means a message was lost, which
// must stop the run.
func enqueued(cmd *redis.Cmd) error {
	r, err := cmd.Text()
	if err != nil {
		return err
	}
	if r != "added" && r != "updated" {
		return fmt.Errorf("carmine: enqueue refused: %s", r)
	}
	return nil
}

func (s *carmineSystem) enqueueOne(ctx context.Context, p []byte) error {
	// Run is EVALSHA, falling back to EVAL on NOSCRIPT, as Carmine's car/lua.
	return enqueued(carmineEnqueue.Run(ctx, s.rdb, s.keys, s.enqueueArgs(p, 0)...))
}

func (s *carmineSystem) enqueueBatch(ctx context.Context, ps [][]byte) error {
	return s.enqueuePipelined(ctx, ps, 0)
}

// enqueueDelayed pipelines enqueues with Carmine's init-backoff option.
func (s *carmineSystem) enqueueDelayed(ctx context.Context, ps [][]byte, delay time.Duration) error {
	return s.enqueuePipelined(ctx, ps, delay)
}

func (s *carmineSystem) enqueuePipelined(ctx context.Context, ps [][]byte, backoff time.Duration) error {
	args := make([][]any, len(ps))
	cmds := make([]*redis.Cmd, len(ps))
	pipe := s.rdb.Pipeline()
	for i, p := range ps {
		args[i] = s.enqueueArgs(p, backoff)
		cmds[i] = carmineEnqueue.EvalSha(ctx, pipe, s.keys, args[i]...)
	}
	_, _ = pipe.Exec(ctx) // each command's error is checked below
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) { // the script cache was flushed: this one did nothing
			cmd = carmineEnqueue.Run(ctx, s.rdb, s.keys, args[i]...)
		}
		if err := enqueued(cmd); err != nil {
			return err
		}
	}
	return nil
}

// carmineWorker is one polling loop feeding up to len(slots) handler
// goroutines.
type carmineWorker struct {
	s        *carmineSystem
	handle   func([]byte)
	slots    chan struct{}  // one token per running handler
	handlers sync.WaitGroup // handler goroutines in flight
	sleeper  *redis.Client  // for the blocking sleeps; closed by stop to end one
	stop     chan struct{}  // closed by stop
	done     chan struct{}  // closed when the loop has returned
	// queueSize is nqueued (docs/protocol.md §10) as the last turn read it, what
	// Carmine's loop hands its monitor and throttle function.
	queueSize int64
}

func (s *carmineSystem) startWorker(ctx context.Context, handlers int, handle func([]byte)) (func() error, error) {
	sopt := *s.opt
	sopt.ReadTimeout = -1 // a sleep blocks for up to ~19 s
	sopt.PoolSize = 1
	w := &carmineWorker{
		s:       s,
		handle:  handle,
		slots:   make(chan struct{}, max(handlers, 1)),
		sleeper: redis.NewClient(&sopt),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run(ctx)
	return func() error {
		close(w.stop)
		w.sleeper.Close() // a BLMOVE in progress fails at once
		<-w.done
		w.handlers.Wait()
		return nil
	}, nil
}

func (w *carmineWorker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// run is the polling loop: one step per turn, handed to a handler, slept
// on, or skipped. Errors are logged and backed off, never fatal, as in
// Carmine.
func (w *carmineWorker) run(ctx context.Context) {
	defer close(w.done)
	nerrors := 0
	for !w.stopped() {
		reply, err := w.turn(ctx)
		if err != nil {
			if w.stopped() {
				return
			}
			nerrors++
			log.Printf("carmine worker: %v", err)
			select {
			case <-w.stop:
			case <-time.After(min(100*time.Millisecond<<min(nerrors, 12), 10*time.Second)):
			}
			continue
		}
		nerrors = 0
		switch reply[0] {
		case "handle":
			w.slots <- struct{}{} // wait for a free handler, as Carmine's pool does
			w.handlers.Go(func() {
				defer func() { <-w.slots }()
				w.handle1(ctx, reply)
			})
		case "sleep":
			list, _ := reply[2].(string)
			ms, _ := reply[3].(int64)
			w.sleep(ctx, list, ms)
		}
	}
}

// turn makes one loop turn's round trip: the poll step plus the reads that
// Carmine pipelines with it for its monitor.
func (w *carmineWorker) turn(ctx context.Context) ([]any, error) {
	k := w.s.keys
	for {
		pipe := w.s.rdb.Pipeline()
		poll := carminePoll.EvalSha(ctx, pipe, k, pollArgs()...)
		pipe.Get(ctx, k[ckNdryRuns]) // nil when absent; only the monitor reads it
		counts := []*redis.IntCmd{
			pipe.HLen(ctx, k[ckLocks]),
			pipe.HLen(ctx, k[ckBackoffs]),
			pipe.LLen(ctx, k[ckMidsReady]),
			pipe.LLen(ctx, k[ckMidCircle]),
			pipe.SCard(ctx, k[ckDone]),
		}
		_, _ = pipe.Exec(ctx) // each command's error is checked below
		if isNoScript(poll.Err()) {
			if err := w.s.loadScripts(ctx); err != nil {
				return nil, err
			}
			continue
		}
		reply, err := poll.Slice()
		if err != nil {
			return nil, err
		}
		var n [5]int64
		for i, c := range counts {
			if n[i], err = c.Result(); err != nil {
				return nil, err
			}
		}
		ntotal := max(0, n[2]+n[3]-1)
		w.queueSize = max(0, ntotal-(n[0]+n[1]+n[4]))
		return reply, nil
	}
}

// pollArgs are the poll script's arguments: the client's clock, as Carmine
// sends it, the default lock time, and Carmine's default end-of-queue
// sleeps, exp-backoff(0..4), drawn afresh for every call as Carmine does.
func pollArgs() []any {
	args := []any{time.Now().UnixMilli(), carmineLockMs}
	for n := range 5 {
		b := float64(int64(1) << n)
		args = append(args, int64((b+rand.Float64()*b)*1000/2))
	}
	return args
}

// handle1 runs the handler on a "handle" reply, then records its success
// with Carmine's two-command pipeline.
func (w *carmineWorker) handle1(ctx context.Context, reply []any) {
	mid, _ := reply[1].(string)
	content, _ := reply[2].(string)
	w.handle([]byte(content))
	k := w.s.keys
	_, err := w.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, k[ckDone], mid)
		p.HDel(ctx, k[ckLocks], mid)
		return nil
	})
	if err != nil {
		log.Printf("carmine worker: completing %s: %v", mid, err)
	}
}

// sleep is the interruptible sleep of docs/protocol.md §5: a blocking move of
// the sentinel from the list the poll named (the empty one) to the other,
// for ms ±20%, at least 10 ms. An enqueue moving the sentinel ends it.
func (w *carmineWorker) sleep(ctx context.Context, list string, ms int64) {
	d := time.Duration(float64(ms)*(0.8+0.4*rand.Float64())) * time.Millisecond
	src, dst := w.s.keys[ckIsleepA], w.s.keys[ckIsleepB]
	if list == "b" {
		src, dst = dst, src
	}
	secs := strconv.FormatFloat(max(d, 10*time.Millisecond).Seconds(), 'f', 3, 64)
	// As in Carmine, a failed sleep (here: the worker stopping) is ignored.
	_ = w.sleeper.Do(ctx, "blmove", src, dst, "RIGHT", "LEFT", secs).Err()
}

// collected: as for mq, the messages hash holds only the waiting delayed
// messages; Carmine's worker collects a handled message when its lap
// reaches it again. One HLEN.
func (s *carmineSystem) collected(ctx context.Context, waiting int) (bool, int, error) {
	n, err := s.rdb.HLen(ctx, s.keys[ckMessages]).Result()
	return n <= int64(waiting), 1, err
}

func (s *carmineSystem) close() error { return s.rdb.Close() }

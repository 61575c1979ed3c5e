-- prelude.lua: composed in front of every script by scripts.go.
--
-- KEYS[1..15]: every key of one queue, in the order of internal/keys:
--   messages, messages-rq, lock-times, lock-times-rq, udts, locks, backoffs,
--   nattempts, done, requeue, mids-ready, mid-circle, ndry-runs,
--   isleep-a, isleep-b
-- Scripts name keys only through these locals, never by building a string,
-- so that Redis Cluster routes every call to the queue's slot.
local K_MESSAGES      = KEYS[1]
local K_MESSAGES_RQ   = KEYS[2]
local K_LOCK_TIMES    = KEYS[3]
local K_LOCK_TIMES_RQ = KEYS[4]
local K_UDTS          = KEYS[5]
local K_LOCKS         = KEYS[6]
local K_BACKOFFS      = KEYS[7]
local K_NATTEMPTS     = KEYS[8]
local K_DONE          = KEYS[9]
local K_REQUEUE       = KEYS[10]
local K_MIDS_READY    = KEYS[11]
local K_MID_CIRCLE    = KEYS[12]
local K_NDRY_RUNS     = KEYS[13]
local K_ISLEEP_A      = KEYS[14]
local K_ISLEEP_B      = KEYS[15]

-- The sentinel that marks one lap of mid-circle.
local END_OF_CIRCLE = 'end-of-circle'

-- Redis before 7 replicates scripts verbatim unless told otherwise, and then
-- refuses TIME before a write. From 7 on this is a no-op.
if redis.replicate_commands then redis.replicate_commands() end

-- server_now is the Redis server's clock in Unix milliseconds, so that
-- workers on machines with skewed clocks agree.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- status.lua: the message status of SPEC section 2, written once and
-- composed into every script that needs it (enqueue, poll, status). It
-- reads no more than the answer needs: a locked message's backoff, and the
-- requeue flag of a queued one, do not change their status.

-- message_status returns the base status of mid at time now ('nil', 'done',
-- 'locked' or 'queued') and, for 'done' and 'queued', whether it is in
-- backoff.
local function message_status(mid, now)
  if redis.call('hexists', K_MESSAGES, mid) == 0 then
    return 'nil', false
  end
  local base = 'queued'
  if redis.call('sismember', K_DONE, mid) == 1 then
    base = 'done'
  elseif now < (tonumber(redis.call('hget', K_LOCKS, mid)) or 0) then
    return 'locked', false
  end
  return base, now < (tonumber(redis.call('hget', K_BACKOFFS, mid)) or 0)
end

-- has_requeue tells whether a requeue of mid is pending: in messages-rq,
-- or in the legacy requeue set.
local function has_requeue(mid)
  return redis.call('hexists', K_MESSAGES_RQ, mid) == 1
    or redis.call('sismember', K_REQUEUE, mid) == 1
end

-- status_name maps mid's base status and backoff flag to the status names
-- of SPEC section 2; '' stands for nil.
local function status_name(mid, base, in_backoff)
  if base == 'queued' then
    if in_backoff then return 'queued-with-backoff' end
    return 'queued'
  elseif base == 'locked' then
    if has_requeue(mid) then return 'locked-with-requeue' end
    return 'locked'
  elseif base == 'done' then
    if has_requeue(mid) then return 'done-with-requeue' end
    if in_backoff then return 'done-with-backoff' end
    return 'done-awaiting-gc'
  end
  return ''
end

-- outcome.lua: recording a handler's outcome (SPEC section 6), fenced on
-- the lock its handling took (SPEC section 10). Composed into complete.lua
-- and poll.lua, which records outcomes before it polls.

-- record_outcome writes one outcome ('success', 'retry' or 'error', with a
-- backoff in ms, 0 for none) if locks[mid] still holds token and the
-- message is not done, and answers 'ok'; otherwise it writes nothing and
-- answers 'lock-lost'. (Whatever removes a message, garbage collection or
-- a clear, removes its lock too.) The outcome is written before the lock
-- is released, so that an error part way (such as OOM) can never free a
-- lock without recording it.
local function record_outcome(mid, token, outcome, backoff_ms, now)
  local held = redis.call('hget', K_LOCKS, mid)
  if (not held) or tonumber(held) ~= tonumber(token)
      or redis.call('sismember', K_DONE, mid) == 1 then
    return 'lock-lost'
  end
  if outcome ~= 'retry' then
    redis.call('sadd', K_DONE, mid)
  end
  if outcome ~= 'error' and backoff_ms > 0 then
    redis.call('hset', K_BACKOFFS, mid, now + backoff_ms)
  end
  redis.call('hdel', K_LOCKS, mid)
  return 'ok'
end

-- record_outcomes records the outcomes given in ARGV from index first on,
-- in groups of four (mid, token, outcome, backoff in ms), n groups, and
-- answers their results in order.
local function record_outcomes(first, n, now)
  local results = {}
  for i = 0, n - 1 do
    local j = first + 4 * i
    results[i + 1] = record_outcome(ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3]), now)
  end
  return results
end

-- poll.lua: up to ARGV[7] worker steps of SPEC section 4, run back to back,
-- stopping early after the first 'sleep' (SPEC section 10, batched poll).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]    the worker's default lock time in ms
-- ARGV[2..6] the five end-of-queue sleep times in ms
-- ARGV[7]    the most steps to take (at least 1)
-- ARGV[8]    the most messages to hand out: the call stops after that many
--            'handle' steps
-- ARGV[9]    n, the number of outcomes to record before polling
-- ARGV[10..] n groups of four, as complete.lua takes them
--
-- Reply: {queue_size, outcomes, step, step, ...} where queue_size is nqueued
-- of SPEC section 8 after the steps, outcomes the results of the outcomes
-- recorded (as complete.lua answers them), and each step is one of
--   {'sleep', sleep_ms, list ('a' or 'b'), ndry_runs}
--   {'skip', reason}
--   {'handle', mid, content, attempt, lock_ms, first_enqueued_ms,
--    locked_until_ms, now_ms}
-- locked_until_ms is the fencing token for complete.lua and renew.lua.

local default_lock_ms = tonumber(ARGV[1])
local max_steps = tonumber(ARGV[7])
local max_handles = tonumber(ARGV[8])
local now = server_now()
local outcomes = record_outcomes(10, tonumber(ARGV[9]), now)

-- useful is set once a step did useful work; ndry-runs is then written
-- as 0 once, before a sleep step reads it or at the end, which leaves the
-- same state as writing it at every such step.
local useful = false

local function step()
  local source = 'ready'
  local mid = redis.call('rpoplpush', K_MIDS_READY, K_MID_CIRCLE)
  if not mid then
    source = 'circle'
    mid = redis.call('rpoplpush', K_MID_CIRCLE, K_MID_CIRCLE)
  end

  if (not mid) or mid == END_OF_CIRCLE then
    local ndry_runs = 0
    if not useful then
      ndry_runs = tonumber(redis.call('get', K_NDRY_RUNS)) or 0
    end
    local sleep_ms = tonumber(ARGV[1 + math.min(5, ndry_runs + 1)])
    redis.call('set', K_NDRY_RUNS, ndry_runs + 1)
    useful = false
    -- Block on the list that does not hold the sentinel.
    local list = 'a'
    if redis.call('llen', K_ISLEEP_A) > 0 then list = 'b' end
    return {'sleep', sleep_ms, list, ndry_runs + 1}
  end

  local base, in_backoff = message_status(mid, now)
  if base == 'nil' then
    if source == 'circle' then
      redis.call('ltrim', K_MID_CIRCLE, 1, -1)
      return {'skip', 'did-trim'}
    end
    return {'skip', 'unexpected'}
  elseif base == 'locked' then
    return {'skip', 'locked'}
  elseif in_backoff then
    if base == 'queued' then return {'skip', 'queued-with-backoff'} end
    return {'skip', 'done-with-backoff'}
  end

  useful = true

  if base == 'done' then
    if redis.call('hexists', K_MESSAGES_RQ, mid) == 1 or redis.call('sismember', K_REQUEUE, mid) == 1 then
      local content = redis.call('hget', K_MESSAGES_RQ, mid)
        or redis.call('hget', K_MESSAGES, mid) -- legacy requeue set
      local lock_ms = redis.call('hget', K_LOCK_TIMES_RQ, mid) or default_lock_ms
      redis.call('hset', K_MESSAGES, mid, content)
      redis.call('hset', K_UDTS, mid, now)
      redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
      redis.call('hdel', K_MESSAGES_RQ, mid)
      redis.call('hdel', K_LOCK_TIMES_RQ, mid)
      redis.call('hdel', K_NATTEMPTS, mid)
      redis.call('srem', K_DONE, mid)
      redis.call('srem', K_REQUEUE, mid)
      redis.call('lpush', K_MIDS_READY, mid)
      return {'skip', 'did-requeue'}
    end
    -- Collect it. messages-rq and the legacy requeue set were just found
    -- not to hold it.
    redis.call('hdel', K_MESSAGES, mid)
    redis.call('hdel', K_LOCK_TIMES, mid)
    redis.call('hdel', K_LOCK_TIMES_RQ, mid)
    redis.call('hdel', K_UDTS, mid)
    redis.call('hdel', K_LOCKS, mid)
    redis.call('hdel', K_BACKOFFS, mid)
    redis.call('hdel', K_NATTEMPTS, mid)
    redis.call('srem', K_DONE, mid)
    if source == 'circle' then
      redis.call('ltrim', K_MID_CIRCLE, 1, -1)
    end
    return {'skip', 'did-gc'}
  end

  -- queued, not in backoff, lock absent or expired: hand it out.
  local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or default_lock_ms
  local locked_until = now + lock_ms
  redis.call('hset', K_LOCKS, mid, locked_until)
  local attempt = redis.call('hincrby', K_NATTEMPTS, mid, 1)
  local content = redis.call('hget', K_MESSAGES, mid)
  local udt = tonumber(redis.call('hget', K_UDTS, mid)) or now
  return {'handle', mid, content, attempt, lock_ms, udt, locked_until, now}
end

local reply = {0, outcomes}
local handled = 0
for _ = 1, max_steps do
  if handled >= max_handles then break end
  local answer = step()
  reply[#reply + 1] = answer
  if answer[1] == 'sleep' then break end
  if answer[1] == 'handle' then handled = handled + 1 end
end
if useful then
  redis.call('set', K_NDRY_RUNS, 0)
end

local ntotal = redis.call('llen', K_MIDS_READY) + redis.call('llen', K_MID_CIRCLE) - 1
if ntotal < 0 then ntotal = 0 end
local nqueued = ntotal - (redis.call('hlen', K_LOCKS) + redis.call('hlen', K_BACKOFFS)
  + redis.call('scard', K_DONE))
if nqueued < 0 then nqueued = 0 end
reply[1] = nqueued
return reply

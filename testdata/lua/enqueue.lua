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

-- enqueue.lua: add or update messages (SPEC section 3), each decided on its
-- own, in order, as if enqueued one by one.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of seven, one group per message:
--   mid, encoded message, initial backoff in ms (0 for none), lock time in
--   ms (0 for the worker's default), then can-update, can-requeue and
--   reset-init-backoff, each '1' or '0'
--
-- Reply: one string per message, in order: 'added' or 'updated' on
-- success, or the reason of a refusal: 'already-queued', 'locked' or
-- 'backoff'.
--
-- The sleep sentinel is moved once per call, after the last message: moving
-- it twice in one script would put it back where it was and wake nobody.

local now = server_now()
local woken = false

-- One message's arguments, set by the loop below for the helpers.
local mid, content, init_backoff, lock_ms, can_update, can_requeue, reset_init_backoff

local function store()
  redis.call('hset', K_MESSAGES, mid, content)
  redis.call('hsetnx', K_UDTS, mid, now)
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
  else
    redis.call('hdel', K_LOCK_TIMES, mid)
  end
end

local function store_requeue()
  redis.call('hset', K_MESSAGES_RQ, mid, content)
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES_RQ, mid, lock_ms)
  else
    redis.call('hdel', K_LOCK_TIMES_RQ, mid)
  end
end

local function set_init_backoff()
  if init_backoff > 0 then
    redis.call('hset', K_BACKOFFS, mid, now + init_backoff)
  else
    redis.call('hdel', K_BACKOFFS, mid)
  end
end

local function to_requeue()
  if has_requeue(mid) then
    if not can_update then return 'already-queued' end
    store_requeue()
    return 'updated'
  end
  store_requeue()
  return 'added'
end

local function enqueue()
  local base, in_backoff = message_status(mid, now)

  if base == 'nil' then
    if redis.call('exists', K_MID_CIRCLE) == 0 then
      redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
    set_init_backoff()
    if init_backoff > 0 then
      redis.call('lpush', K_MID_CIRCLE, mid)
    else
      redis.call('lpush', K_MIDS_READY, mid)
    end
    store()
    woken = true
    return 'added'
  elseif base == 'queued' then
    if can_update then
      if reset_init_backoff then set_init_backoff() end
      store()
      return 'updated'
    elseif reset_init_backoff then
      set_init_backoff()
      return 'updated'
    end
    return 'already-queued'
  elseif base == 'locked' then
    if can_requeue then return to_requeue() end
    return 'locked'
  end

  -- done
  if in_backoff then
    if can_requeue then return to_requeue() end
    return 'backoff'
  end
  redis.call('lpush', K_MIDS_READY, mid)
  woken = true
  return to_requeue()
end

local reply = {}
for i = 1, #ARGV, 7 do
  mid, content = ARGV[i], ARGV[i + 1]
  init_backoff, lock_ms = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  can_update, can_requeue = ARGV[i + 4] == '1', ARGV[i + 5] == '1'
  reset_init_backoff = ARGV[i + 6] == '1'
  reply[#reply + 1] = enqueue()
end

-- wake: move the sleep sentinel to the other list, which unblocks one
-- worker sleeping on it (SPEC section 5), creating it the first time.
if woken then
  if not redis.call('rpoplpush', K_ISLEEP_A, K_ISLEEP_B) then
    if not redis.call('rpoplpush', K_ISLEEP_B, K_ISLEEP_A) then
      redis.call('lpush', K_ISLEEP_A, '_')
    end
  end
end
return reply

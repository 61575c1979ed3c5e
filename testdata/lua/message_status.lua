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

-- message_status.lua: the status of some messages (SPEC section 2), with
-- what queue content shows of each.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1..n] mids
--
-- Reply: {now_ms, {status, attempts, backoff_until_ms, first_enqueued_ms}, ...}
-- with one entry per mid, in order; status is '' for nil, and the numbers
-- are 0 where there is no such entry.

local now = server_now()
local reply = {now}
for i = 1, #ARGV do
  local mid = ARGV[i]
  local name = status_name(mid, message_status(mid, now))
  reply[i + 1] = {
    name,
    tonumber(redis.call('hget', K_NATTEMPTS, mid)) or 0,
    tonumber(redis.call('hget', K_BACKOFFS, mid)) or 0,
    tonumber(redis.call('hget', K_UDTS, mid)) or 0,
  }
end
return reply

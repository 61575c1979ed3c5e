-- enqueue.lua: add or update one message (SPEC section 3).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] mid
-- ARGV[2] encoded message
-- ARGV[3] initial backoff in ms, 0 for none
-- ARGV[4] lock time in ms, 0 for the worker's default
-- ARGV[5] can-update: '1' or '0'
-- ARGV[6] can-requeue: '1' or '0'
-- ARGV[7] reset-init-backoff: '1' or '0'
--
-- Reply: one string, 'added' or 'updated' on success, or the reason of a
-- refusal: 'already-queued', 'locked' or 'backoff'.

local mid          = ARGV[1]
local content      = ARGV[2]
local init_backoff = tonumber(ARGV[3])
local lock_ms      = tonumber(ARGV[4])
local can_update   = ARGV[5] == '1'
local can_requeue  = ARGV[6] == '1'
local reset_init_backoff = ARGV[7] == '1'
local now = server_now()

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

-- wake moves the sleep sentinel to the other list, which unblocks one
-- worker sleeping on it (SPEC section 5).
local function wake()
  if redis.call('rpoplpush', K_ISLEEP_A, K_ISLEEP_B) then return end
  if redis.call('rpoplpush', K_ISLEEP_B, K_ISLEEP_A) then return end
  redis.call('lpush', K_ISLEEP_A, '_')
end

local function to_requeue(has_requeue)
  if has_requeue then
    if not can_update then return 'already-queued' end
    store_requeue()
    return 'updated'
  end
  store_requeue()
  return 'added'
end

local base, in_backoff, has_requeue = message_status(mid, now)

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
  wake()
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
  if can_requeue then return to_requeue(has_requeue) end
  return 'locked'
end

-- done
if in_backoff then
  if can_requeue then return to_requeue(has_requeue) end
  return 'backoff'
end
redis.call('lpush', K_MIDS_READY, mid)
wake()
return to_requeue(has_requeue)

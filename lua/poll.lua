-- poll.lua: up to ARGV[7] worker steps of SPEC section 4, run back to back,
-- stopping early after the first 'sleep' (SPEC section 10, batched poll).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]    the worker's default lock time in ms
-- ARGV[2..6] the five end-of-queue sleep times in ms
-- ARGV[7]    the most steps to take (at least 1)
-- ARGV[8]    the most messages to hand out: the call stops after that many
--            'handle' steps
-- ARGV[9]    '1' to answer the queue size, '0' to spare its five reads
-- ARGV[10]   n, the number of outcomes to record before polling
-- ARGV[11..] n groups of four, as complete.lua takes them
--
-- Reply: {queue_size, outcomes, step, step, ...} where queue_size is nqueued
-- of SPEC section 8 after the steps (-1 when not asked for), outcomes the
-- results of the outcomes
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
local outcomes = record_outcomes(11, tonumber(ARGV[10]), now)

-- useful is set once a step did useful work; ndry-runs is then written
-- as 0 once, before a sleep step reads it or at the end, which leaves the
-- same state as writing it at every such step.
local useful = false

-- ready_empty is set once mids-ready was found empty: nothing but this
-- call's own did-requeue steps can fill it again before the call ends.
local ready_empty = false

-- Gathered writes. A step that takes from mid-circle pops its right end
-- and, unless the mid is dropped, owes a push onto its left end; a step
-- that collects a mid owes one delete per hash and set. Both are gathered
-- and sent as one command per key (flush, below), which leaves the same
-- state as SPEC section 4's step-by-step writes, in a fraction of the
-- calls:
--   * the owed pushes, sent in order, build the same left end, and are
--     sent before anything else pushes there (a pop from mids-ready) or
--     reads the list's length; no pop of this call reaches them, since a
--     lap ends at the sentinel, which ends the call (if the list lacks the
--     sentinel and runs empty, they are sent and the pop is tried again);
--   * a collected mid reads as absent from then on (collected), as it
--     would once deleted; nothing writes an absent mid's entries.
-- Under maxmemory a write is refused only as a script's first write, and
-- the pops come first, so a gathered push is never refused.
local circle_back = {}
local collected, collected_list, collected_backoffs = {}, {}, {}

local function push_circle_back()
  if #circle_back > 0 then
    call_each('lpush', K_MID_CIRCLE, circle_back)
    circle_back = {}
  end
end

local function flush()
  push_circle_back()
  if #collected_list > 0 then
    for _, key in ipairs({K_MESSAGES, K_LOCK_TIMES, K_LOCK_TIMES_RQ, K_UDTS, K_LOCKS, K_NATTEMPTS}) do
      call_each('hdel', key, collected_list)
    end
    call_each('srem', K_DONE, collected_list)
    call_each('hdel', K_BACKOFFS, collected_backoffs)
    collected_list, collected_backoffs = {}, {}
  end
end

-- take takes the next mid (step 1): from mids-ready onto mid-circle, or
-- else from mid-circle's right end, and tells which.
local function take()
  if not ready_empty then
    push_circle_back()
    local mid = redis.call('rpoplpush', K_MIDS_READY, K_MID_CIRCLE)
    if mid then return mid, false end
    ready_empty = true
  end
  local mid = redis.call('rpop', K_MID_CIRCLE)
  if (not mid) and #circle_back > 0 then
    push_circle_back()
    mid = redis.call('rpop', K_MID_CIRCLE)
  end
  return mid, true
end

-- decide takes steps 2 and 3 for mid and answers the step, and whether a
-- mid taken from mid-circle leaves it.
local function decide(mid, from_circle)
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
    return {'sleep', sleep_ms, list, ndry_runs + 1}, false
  end

  -- One read of messages answers both whether mid is in the queue and,
  -- when it is handed out, its content.
  local content = false
  if not collected[mid] then
    content = redis.call('hget', K_MESSAGES, mid)
  end
  local base, in_backoff, has_backoff = message_status(mid, now, content ~= false)
  if base == 'nil' then
    if from_circle then
      return {'skip', 'did-trim'}, true
    end
    return {'skip', 'unexpected'}, false
  elseif base == 'locked' then
    return {'skip', 'locked'}, false
  elseif in_backoff then
    if base == 'queued' then return {'skip', 'queued-with-backoff'}, false end
    return {'skip', 'done-with-backoff'}, false
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
      ready_empty = false
      return {'skip', 'did-requeue'}, false
    end
    -- Collect it. messages-rq and the legacy requeue set were just found
    -- not to hold it; backoffs was read by message_status.
    collected[mid] = true
    collected_list[#collected_list + 1] = mid
    if has_backoff then
      collected_backoffs[#collected_backoffs + 1] = mid
    end
    return {'skip', 'did-gc'}, from_circle
  end

  -- queued, not in backoff, lock absent or expired: hand it out.
  local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or default_lock_ms
  local locked_until = now + lock_ms
  redis.call('hset', K_LOCKS, mid, locked_until)
  local attempt = redis.call('hincrby', K_NATTEMPTS, mid, 1)
  local udt = tonumber(redis.call('hget', K_UDTS, mid)) or now
  return {'handle', mid, content, attempt, lock_ms, udt, locked_until, now}, false
end

local reply = {0, outcomes}
local handled = 0
for _ = 1, max_steps do
  if handled >= max_handles then break end
  local mid, from_circle = take()
  local answer, dropped = decide(mid, from_circle)
  if mid and from_circle and not dropped then
    circle_back[#circle_back + 1] = mid
  end
  reply[#reply + 1] = answer
  if answer[1] == 'sleep' then break end
  if answer[1] == 'handle' then handled = handled + 1 end
end
flush()
if useful then
  redis.call('set', K_NDRY_RUNS, 0)
end

if ARGV[9] == '1' then
  local ntotal = redis.call('llen', K_MIDS_READY) + redis.call('llen', K_MID_CIRCLE) - 1
  if ntotal < 0 then ntotal = 0 end
  local nqueued = ntotal - (redis.call('hlen', K_LOCKS) + redis.call('hlen', K_BACKOFFS)
    + redis.call('scard', K_DONE))
  if nqueued < 0 then nqueued = 0 end
  reply[1] = nqueued
else
  reply[1] = -1
end
return reply

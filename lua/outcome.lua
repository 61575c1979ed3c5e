-- outcome.lua: recording a handler's outcome (docs/protocol.md §6), fenced on
-- the lock its handling took (§7). Composed into dequeue.lua,
-- which records outcomes before it polls.

-- holds_lock tells whether token proves the current lock of mid: it is the
-- lock, or a renewal was presented token and wrote the lock that is there
-- now (lock-aliases), which happens when the renewal's reply was lost.
local function holds_lock(mid, token)
  local held = redis.call('hget', K_LOCKS, mid)
  if not held then return false end
  if tonumber(held) == tonumber(token) then return true end
  local alias = redis.call('hget', K_LOCK_ALIASES, mid)
  if not alias then return false end
  local from, to = string.match(alias, '^(%d+) (%d+)$')
  return tonumber(from) == tonumber(token) and tonumber(to) == tonumber(held)
end

-- record_outcome writes one outcome ('success', 'retry' or 'error', with a
-- backoff in ms, 0 for none) if the token proves the lock of mid and the
-- message is not done, and answers 'ok'; otherwise it writes nothing and
-- answers 'lock-lost'. The outcome 'release' gives back a message a worker
-- took but never started (prefetched, then the worker stopped or it waited
-- too long, or the reply that handed it out was lost): the lock goes, the
-- attempt is uncounted, and the mid goes to the right of mids-ready, the
-- end polls pop next, leaving the message as it was before the poll took
-- it. (Whatever removes a message, garbage collection or a clear, removes
-- its lock too.) The outcome is written before the lock is released, so
-- that an error part way can never free a lock without recording it.
--
-- Within one call, the done marks and lock deletions of 'success', 'retry'
-- and 'error' are gathered and written as one SADD and one HDEL when the
-- outcomes are recorded (done marks first), which leaves the same state
-- as writing each in turn. unlocked remembers the mids whose lock goes, so
-- that a second outcome for one of them in the same call reads it as lost,
-- as it would once the lock is deleted.
local function record_outcome(mid, token, outcome, backoff_ms, now, pending)
  if pending.unlocked[mid] then
    return 'lock-lost'
  end
  if (not holds_lock(mid, token)) or redis.call('sismember', K_DONE, mid) == 1 then
    return 'lock-lost'
  end
  if outcome == 'release' then
    redis.call('hdel', K_LOCKS, mid)
    if redis.call('hincrby', K_NATTEMPTS, mid, -1) <= 0 then
      redis.call('hdel', K_NATTEMPTS, mid)
    end
    redis.call('rpush', K_MIDS_READY, mid)
    return 'ok'
  end
  if outcome ~= 'retry' then
    pending.done[#pending.done + 1] = mid
  end
  if outcome ~= 'error' and backoff_ms > 0 then
    redis.call('hset', K_BACKOFFS, mid, now + backoff_ms)
  end
  pending.unlocked[mid] = true
  pending.unlock[#pending.unlock + 1] = mid
  return 'ok'
end

-- UNPACK_MAX bounds the arguments one gathered command takes, well inside
-- what Lua's unpack can spread.
local UNPACK_MAX = 1000

-- call_each runs redis.call(cmd, key, ...) over all of items, in chunks.
local function call_each(cmd, key, items)
  for i = 1, #items, UNPACK_MAX do
    redis.call(cmd, key, unpack(items, i, math.min(i + UNPACK_MAX - 1, #items)))
  end
end

-- record_outcomes records the outcomes given in ARGV from index first on,
-- in groups of four (mid, token, outcome, backoff in ms), n groups, and
-- answers their results in order. The first #known of them were recorded
-- by an earlier call whose reply was lost: known holds their answers, one
-- character each ('o' for 'ok', 'l' for 'lock-lost'), and they are not
-- recorded again.
local function record_outcomes(first, n, now, known)
  local results = {}
  local pending = {done = {}, unlock = {}, unlocked = {}}
  for i = 0, n - 1 do
    if i < #known then
      if string.sub(known, i + 1, i + 1) == 'o' then
        results[i + 1] = 'ok'
      else
        results[i + 1] = 'lock-lost'
      end
    else
      local j = first + 4 * i
      results[i + 1] = record_outcome(ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3]), now, pending)
    end
  end
  call_each('sadd', K_DONE, pending.done)
  call_each('hdel', K_LOCKS, pending.unlock)
  return results
end

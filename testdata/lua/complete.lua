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

-- complete.lua: record the outcomes of handled messages (SPEC section 6),
-- each fenced on the lock its handling took (SPEC section 10).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of four, one group per message:
--   mid, locked_until_ms (the token from poll.lua or renew.lua),
--   outcome ('success', 'retry' or 'error'), backoff in ms (0 for none)
--
-- Reply: one string per group, in order: 'ok', or 'lock-lost' when the
-- lock is no longer the one the handling took (it expired and the message
-- was handed out again, or the message is done or gone); then nothing is
-- written for that message.

return record_outcomes(1, #ARGV / 4, server_now())

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

-- renew.lua: push the locks of messages being handled forward (SPEC
-- section 10), each fenced like complete.lua.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of three, one group per message:
--   mid, locked_until_ms (the current token), lock time in ms
--
-- Reply: one integer per group, in order: the new locked_until_ms, which is
-- the new token, or 0 when the lock was lost (nothing is written then).

local now = server_now()
local reply = {}
for i = 1, #ARGV, 3 do
  local mid, token = ARGV[i], ARGV[i + 1]
  local lock_ms = tonumber(ARGV[i + 2])
  local held = redis.call('hget', K_LOCKS, mid)
  if (not held) or tonumber(held) ~= tonumber(token)
      or redis.call('sismember', K_DONE, mid) == 1
      or redis.call('hexists', K_MESSAGES, mid) == 0 then
    reply[#reply + 1] = 0
  else
    local locked_until = now + lock_ms
    -- The new token must differ from the old one.
    if locked_until <= tonumber(held) then locked_until = tonumber(held) + 1 end
    redis.call('hset', K_LOCKS, mid, locked_until)
    reply[#reply + 1] = locked_until
  end
end
return reply

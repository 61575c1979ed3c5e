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

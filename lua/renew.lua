-- renew.lua: push the locks of messages being handled forward
-- (docs/protocol.md §7), each fenced like an outcome (holds_lock, outcome.lua).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of three, one group per message:
--   mid, locked_until_ms (the current token), lock time in ms
--
-- Reply: one integer per group, in order: the new locked_until_ms, which is
-- the new token, or 0 when the lock was lost (nothing is written then).
--
-- Each renewal also writes lock-aliases[mid] = "<token presented> <new
-- token>". Should its reply be lost, the handling still holds the token
-- it presented, and holds_lock accepts that token for the lock this
-- renewal wrote: a resent or later renewal, and the outcome, still prove
-- the lock. The aliases go when the message is collected.

go_on_when_full()

local now = server_now()
local reply = {}
for i = 1, #ARGV, 3 do
  local mid, token = ARGV[i], ARGV[i + 1]
  local lock_ms = tonumber(ARGV[i + 2])
  if (not holds_lock(mid, token))
      or redis.call('sismember', K_DONE, mid) == 1
      or redis.call('hexists', K_MESSAGES, mid) == 0 then
    reply[#reply + 1] = 0
  else
    local held = tonumber(redis.call('hget', K_LOCKS, mid))
    local locked_until = now + lock_ms
    -- The new token must differ from the old one.
    if locked_until <= held then locked_until = held + 1 end
    redis.call('hset', K_LOCKS, mid, locked_until)
    redis.call('hset', K_LOCK_ALIASES, mid, token .. ' ' .. locked_until)
    limits_renew(mid, locked_until) -- (§19) its slot, in step
    reply[#reply + 1] = locked_until
  end
end
return reply

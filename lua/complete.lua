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
--
-- The outcome is written before the lock is released, so that an error
-- part way (such as OOM) can never free a lock without recording it.

local now = server_now()
local reply = {}
for i = 1, #ARGV, 4 do
  local mid, token, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local backoff_ms = tonumber(ARGV[i + 3])
  local held = redis.call('hget', K_LOCKS, mid)
  if (not held) or tonumber(held) ~= tonumber(token)
      or redis.call('sismember', K_DONE, mid) == 1
      or redis.call('hexists', K_MESSAGES, mid) == 0 then
    reply[#reply + 1] = 'lock-lost'
  else
    if outcome ~= 'retry' then
      redis.call('sadd', K_DONE, mid)
    end
    if outcome ~= 'error' and backoff_ms > 0 then
      redis.call('hset', K_BACKOFFS, mid, now + backoff_ms)
    end
    redis.call('hdel', K_LOCKS, mid)
    reply[#reply + 1] = 'ok'
  end
end
return reply

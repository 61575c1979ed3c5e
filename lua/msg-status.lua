-- msg-status.lua: the status of some messages (docs/protocol.md §2), with
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

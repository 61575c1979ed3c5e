-- result.lua (beyond Carmine): reads the result of one message (§21).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] mid
--
-- Reply: {stored, pending}: stored is results[mid] ("<ms>:<bytes>", the
-- time the success was recorded, by the server's clock, and the result),
-- '' for none; pending is 1 while the message is still to be handled
-- (queued, locked, or done with a requeue pending), else 0. A result
-- recorded no later than the pending message's first enqueue belongs to
-- an earlier message of the same id (enqueued again after its success, or
-- requeued), and is not answered: the new one is awaited.

local mid = ARGV[1]
local now = server_now()
local stored = redis.call('hget', K_RESULTS, mid)
local base = message_status(mid, now)
local pending = base == 'queued' or base == 'locked' or (base == 'done' and has_requeue(mid))
if stored and pending then
  local at = tonumber(string.match(stored, '^(%d+):')) or 0
  local udt = tonumber(redis.call('hget', K_UDTS, mid)) or 0
  if at <= udt then stored = false end
end
return {stored or '', pending and 1 or 0}

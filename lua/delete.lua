-- delete.lua (beyond Carmine): deletes messages by id, whatever their
-- status (docs/protocol.md §10). Every entry of each id goes, its pending
-- requeue and its lock included, so a handler still holding it finds its
-- outcome fenced off (§7) and an enqueue of the id is a fresh message. The
-- id stays in mids-ready or mid-circle until a poll meets it there and
-- drops it (§4), as one in prio-hi or prio-lo (§18); its due and window
-- entries, its own policy (§14), its priority, its limits state (§19), its
-- cancel and progress (§20) go at once, and so does its result (§21). Its
-- dead letter, if it has one, stays (§11). A batch member not yet finished
-- ticks its batch as cancelled (§22), so that the batch still completes.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1..n] mids
--
-- Reply: {existed, ...}, one per mid, in order: 1 when the message was in
-- the queue (it had a status), 0 when not.

local now = server_now()
local reply = {}
for i = 1, #ARGV do
  local mid = ARGV[i]
  local base = message_status(mid, now)
  -- (§22) a batch member deleted (or cancelled while queued, cancel.lua)
  -- before it finished finishes its batch as cancelled; a done one ticked
  -- with its success
  if base ~= 'nil' and base ~= 'done' then ext.tick_batch(mid, nil, 'c') end
  -- (§19) its slot freed, its parked entry and reservation dropped
  if feature_used('limits') then ext.limits_freed(mid, 'collect', now) end
  for _, key in ipairs({K_MESSAGES, K_MESSAGES_RQ, K_LOCK_TIMES, K_LOCK_TIMES_RQ, K_UDTS, K_LOCKS,
      K_BACKOFFS, K_NATTEMPTS, K_LOCK_ALIASES, K_NOUTCOMES, K_META, K_ATTEMPT_ERRORS, K_NSOLO}) do
    redis.call('hdel', key, mid)
  end
  redis.call('srem', K_DONE, mid)
  redis.call('srem', K_REQUEUE, mid)
  redis.call('zrem', K_DUE, mid)
  redis.call('zrem', K_WINDOWS, mid)
  redis.call('hdel', K_POLICY, mid)
  redis.call('hdel', K_PRIO, mid)
  redis.call('hdel', K_RESULTS, mid)
  redis.call('zrem', K_RESULTS_INDEX, mid)
  redis.call('hdel', K_CANCELS, mid)
  redis.call('hdel', K_PROGRESS, mid)
  reply[i] = (base ~= 'nil') and 1 or 0
end
if feature_used('limits') then ext.limits_flush() end -- (§19) its gathered writes
if limits_wake then wake_one() end
return reply

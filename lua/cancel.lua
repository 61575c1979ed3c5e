-- cancel.lua (beyond Carmine): cancel one message from any process
-- (docs/protocol.md §20). Composed in front of delete.lua, whose body
-- deletes a queued message: this part answers, and returns, for every
-- other status.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] mid
--
-- Reply:
--   'unknown'   the queue does not hold mid;
--   'done'      mid is done already (awaiting collection, or in its
--               dedupe window): nothing to cancel;
--   'signalled' mid is locked (being handled): cancels[mid] is set,
--               tagged with its first-enqueue time, and '<udt> <mid>' (its
--               first-enqueue time and id) is published on the queue's
--               cancel channel: the queue's key prefix (read off
--               K_MESSAGES) and 'cancel';
--   {1}         (delete.lua's reply) mid was queued, in backoff or not,
--               or its lock had run out: it is deleted with every entry
--               of it and never runs.
-- A cancel of a locked message writes the features field 'cancel', so
-- that outcomes, renewals and polls read cancels from then on.
--
-- Every call also takes one step of a walk over cancels (HSCAN, COUNT 16,
-- its cursor kept in the field end-of-circle, which no message may have as
-- its id) and drops the entries whose message is gone or is another
-- message of the same id (a Carmine worker's collection does not know the
-- key): cancels holds no more than the live messages cancelled, plus what
-- the walk has yet to reach.

go_on_when_full()

local c_mid = ARGV[1]
local c_now = server_now()
local c_base = message_status(c_mid, c_now)
if c_base == 'nil' then return 'unknown' end
if c_base == 'done' then return 'done' end
if c_base == 'locked' then
  redis.call('hset', K_FEATURES, 'cancel', '1')
  local udt = redis.call('hget', K_UDTS, c_mid) or '0'
  if not tagged_get(K_CANCELS, c_mid, udt) then
    redis.call('hset', K_CANCELS, c_mid, udt .. ':' .. c_now)
  end
  local cursor = redis.call('hget', K_CANCELS, END_OF_CIRCLE) or '0'
  local scan = redis.call('hscan', K_CANCELS, cursor, 'COUNT', 16)
  local items = scan[2]
  for i = 1, #items, 2 do
    local mid = items[i]
    if mid ~= END_OF_CIRCLE and mid ~= c_mid
        and not tagged_get(K_CANCELS, mid, redis.call('hget', K_UDTS, mid) or '') then
      redis.call('hdel', K_CANCELS, mid)
    end
  end
  redis.call('hset', K_CANCELS, END_OF_CIRCLE, scan[1])
  redis.call('publish', string.sub(K_MESSAGES, 1, #K_MESSAGES - #'messages') .. 'cancel', udt .. ' ' .. c_mid)
  return 'signalled'
end
-- queued: delete.lua's body, below, deletes ARGV[1].

-- msg-status.lua: what a queue holds of some messages: the status of
-- docs/protocol.md §2 and what goes with it, read in one atomic step, for
-- the inspector's single-message read and its pages.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]    what to read beyond the status, as letters: 'c' the stored
--            content, 'd' the dead letter of the same id (§11), 'e' the
--            errors of its failed attempts (§17)
-- ARGV[2..n] mids
--
-- Reply: {now_ms, entry, ...}, one entry per mid, in order:
--   {status, attempts, backoff_until_ms, first_enqueued_ms, locked_until_ms,
--    own lock ms, requeue content or false, requeue's own lock ms,
--    metadata or false, content or false, dead letter record or false,
--    own policy or false, attempt errors or false, priority ('h', 'l', or
--    false for normal)}
-- status is '' for nil; numbers are 0 where there is no such entry; the
-- requeue content is that of messages-rq (false for none, and for
-- Carmine's older requeue marks, which requeue the current content); the
-- content is read only when asked for ('c'), the dead letter record (as
-- dead-letters.lua answers it) only with 'd'; the policy (§14, as the
-- client encoded it, without its tag; false when stale) is read only when
-- the queue's features say it uses policies; the attempt errors (items
-- in threes, pack()ed as attempt-errors.lua keeps them, those of attempts
-- up to the current one only; false for none) only with 'e'; and the
-- priority (§18) only when the features say the queue uses priorities.

local want = ARGV[1]
local with_content = string.find(want, 'c', 1, true) ~= nil
local with_dead = string.find(want, 'd', 1, true) ~= nil
local with_errors = string.find(want, 'e', 1, true) ~= nil
local now = server_now()
local reply = {now}
local used = redis.call('hmget', K_FEATURES, 'policy', 'priority')
local uses_policy, uses_priority = used[1] ~= false, used[2] ~= false
for i = 2, #ARGV do
  local mid = ARGV[i]
  local base, in_backoff = message_status(mid, now)
  local entry = {
    status_name(mid, base, in_backoff),
    tonumber(redis.call('hget', K_NATTEMPTS, mid)) or 0,
    tonumber(redis.call('hget', K_BACKOFFS, mid)) or 0,
    tonumber(redis.call('hget', K_UDTS, mid)) or 0,
    tonumber(redis.call('hget', K_LOCKS, mid)) or 0,
    tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or 0,
    redis.call('hget', K_MESSAGES_RQ, mid),
    tonumber(redis.call('hget', K_LOCK_TIMES_RQ, mid)) or 0,
    redis.call('hget', K_META, mid),
    false,
    false,
    false,
    false,
    false,
  }
  if uses_priority then
    local p = tagged_get(K_PRIO, mid, entry[4])
    if p == 'h' or p == 'l' then entry[14] = p end
  end
  if uses_policy then entry[12] = tagged_get(K_POLICY, mid, entry[4]) end
  if with_content then entry[10] = redis.call('hget', K_MESSAGES, mid) end
  if with_dead then entry[11] = redis.call('hget', K_DEAD, mid) end
  if with_errors then
    local items = attempt_errors(mid, entry[2] + 1)
    if #items > 0 then entry[13] = pack(items) end
  end
  reply[i] = entry
end
return reply

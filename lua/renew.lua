-- renew.lua: push the locks of messages being handled forward
-- (docs/protocol.md §7), each fenced like an outcome (holds_lock, outcome.lua).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of four, one group per message:
--   mid, locked_until_ms (the current token), lock time in ms, progress
--   ('' for none; otherwise '<n> <note>', the handler's latest progress,
--   §20)
--
-- Reply: one integer per group, in order: the new locked_until_ms, which is
-- the new token, or 0 when the lock was lost (nothing is written then); the
-- token negated when a cancel of the message stands (§20): the lock is
-- renewed all the same, and the handling is to end.
--
-- Each renewal also writes lock-aliases[mid] = "<token presented> <new
-- token>". Should its reply be lost, the handling still holds the token
-- it presented, and holds_lock accepts that token for the lock this
-- renewal wrote: a resent or later renewal, and the outcome, still prove
-- the lock. The aliases go when the message is collected.
--
-- A progress given is written to progress[mid], tagged with the message's
-- first-enqueue time and stamped with the server's time
-- ('<udt>:<ms> <n> <note>'), and the queue's features get 'progress'.

go_on_when_full()

local now = server_now()
local reply = {}
local progress_noted = false
for i = 1, #ARGV, 4 do
  local mid, token = ARGV[i], ARGV[i + 1]
  local lock_ms = tonumber(ARGV[i + 2])
  local progress = ARGV[i + 3]
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
    -- (udts read only for a progress, or a cancel when the queue uses
    -- cancels: cancel_asked reads it then)
    local udt = nil
    if progress ~= nil and progress ~= '' then
      udt = redis.call('hget', K_UDTS, mid)
      if not progress_noted then
        redis.call('hset', K_FEATURES, 'progress', '1')
        progress_noted = true
      end
      redis.call('hset', K_PROGRESS, mid, (udt or '0') .. ':' .. now .. ' ' .. progress)
    end
    if ext.cancel_asked(mid, udt) then
      reply[#reply + 1] = -locked_until
    else
      reply[#reply + 1] = locked_until
    end
  end
end
return reply

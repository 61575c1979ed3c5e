-- limits-set.lua (beyond Carmine): sets or clears the queue's limits
-- (docs/protocol.md §19) and marks the queue as using them.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] the queue's rate, '<n> <period ms> <burst>', '' for none
-- ARGV[2] the rate per limit key, likewise
-- ARGV[3] the queue's concurrency limit, '' for none
-- ARGV[4] the concurrency limit per limit key, '' for none
--
-- features.limits, set, spells the limits too, '+<rate>|<key-rate>|<conc>|
-- <key-conc>', so that a poll reads them with the features it reads
-- anyway (an enqueue with a limit key sets it only when absent); the '+'
-- says the queue's state is in the layout of now (limits.lua,
-- limits_migrate).
--
-- Every parked id goes back to be handed out (each key's first in line,
-- in order), so that a limit lifted or raised lets them go; one still
-- refused parks again. A sleeping worker is woken to read the new limits.
--
-- Reply: the number of parked ids released.

-- (limits.lua's functions: limits_load has run already when the queue
-- uses limits; limits_more makes limits_migrate and limits_unkey)
if not ext.limits_more then
  limits_load(K_FEATURES, K_LIMITS, K_LIMIT_KEY, K_PARKED, K_RATE_KEYS, K_RATE_TAT, K_SLOTS,
    K_SLOT_COUNTS, K_UDTS, OUTCOME_ARGS, UNPACK_MAX, call_each, ext, features, feature_used,
    message_status, push_ready, server_now, tagged_get)
end
ext.limits_more()

local fields = {'rate', 'key-rate', 'conc', 'key-conc'}
local any = false
for i, f in ipairs(fields) do
  if string.find(ARGV[i], '|', 1, true) then return redis.error_reply('ERR a limit holds no |') end
  if ARGV[i] ~= '' then
    redis.call('hset', K_LIMITS, f, ARGV[i])
    any = true
  else
    redis.call('hdel', K_LIMITS, f)
  end
end
local spelled = redis.call('hget', K_FEATURES, 'limits')
if any or spelled then
  -- (a queue set up before this layout moves to it first, §19)
  if spelled and string.byte(spelled, 1) ~= 43 then limits_migrate() end -- ('+')
  redis.call('hset', K_FEATURES, 'limits', '+' .. table.concat({ARGV[1], ARGV[2], ARGV[3], ARGV[4]}, '|'))
end

-- (without a limit per key, no slot counts under a key: limits.lua,
-- lim.resolve)
if (tonumber(ARGV[4]) or 0) <= 0 then limits_unkey() end

local now = server_now()
local members = redis.call('zrange', K_PARKED, 0, -1)
for i = #members, 1, -1 do
  local mid = string.match(members[i], '^.-%z%d+%z(.*)$')
  redis.call('hdel', K_SLOTS, 'p:' .. mid)
  local base, in_backoff = message_status(mid, now)
  if base == 'queued' and not in_backoff then
    push_ready('rpush', mid)
  end
end
redis.call('del', K_PARKED)
wake_one()
return #members

-- limits.lua (beyond Carmine): rate and concurrency limits, enforced by the
-- poll on the server's clock (docs/protocol.md §19). Composed after
-- outcome.lua into dequeue.lua, renew.lua, delete.lua and limits-set.lua.
-- Nothing here reads a key unless the queue's features hash says it uses
-- limits (feature_used('limits'), set by limits-set.lua).
--
-- Rate: GCRA. A rate of n per period with burst b allows a hand-out when
-- tat - now <= tau, where t = period / n is the time one token takes and
-- tau = b * t; the hand-out moves tat to max(tat, now) + t. tat is kept in
-- rate-tat, in µs, under 'q' for the queue and 'k:<key>' per limit key.
-- A message refused by its key's rate reserves that key's next token
-- (tat moves on as if it were handed out; rate-tat 'r:<mid>' marks the
-- reservation) and waits in due until the token comes due, so that
-- messages of one key waiting on its rate are each woken once, at their
-- own token. A message refused by the queue's rate (or its concurrency)
-- stays first in line and the call ends with a sleep step that ends when
-- the token comes due: nothing of the queue could be handed out before.
--
-- Concurrency: a hand-out takes a slot, slots['h:<mid>'] = '<lock expiry>
-- <key>', counted in slot-counts 'q' (and 'k:<key>' when the queue has a
-- per-key limit and the message a key). The outcome frees it, as does the
-- poll's wake of its due entry once its lock ran out without one (the
-- process died), a collection, and a delete. A message refused for want
-- of a slot of its key is parked: a member '<key>\0<seq>\0<mid>' of
-- parked (FIFO per key by lexical order) and slots['p:<mid>'] naming it;
-- freeing a slot of the key moves the first parked id of the key back to
-- be handed out, first in line, and wakes a sleeper.

-- The queue's limits, read once per call: false for none.
local limits_conf = nil

-- limits_parse_rate answers {t = µs per token, tau = µs of burst} of a
-- rate field '<n> <period ms> <burst>', nil for none.
local function limits_parse_rate(s)
  if not s then return nil end
  local n, p, b = string.match(s, '^(%d+) (%d+) (%d+)$')
  n, p, b = tonumber(n), tonumber(p), tonumber(b)
  if not n or n <= 0 or p <= 0 then return nil end
  local t = math.ceil(p * 1000 / n)
  return {t = t, tau = b * t}
end

local function limits_cfg()
  if limits_conf == nil then
    limits_conf = false
    if feature_used('limits') then
      local v = redis.call('hmget', K_LIMITS, 'rate', 'key-rate', 'conc', 'key-conc')
      local c = {rate = limits_parse_rate(v[1]), key_rate = limits_parse_rate(v[2]),
        conc = tonumber(v[3]), key_conc = tonumber(v[4])}
      if c.conc and c.conc <= 0 then c.conc = nil end
      if c.key_conc and c.key_conc <= 0 then c.key_conc = nil end
      if c.rate or c.key_rate or c.conc or c.key_conc then limits_conf = c end
    end
  end
  return limits_conf
end

-- limits_us writes a time in µs as an integer (tostring would round it).
local function limits_us(x) return string.format('%.0f', x) end

-- limits_key_of answers mid's limit key, '' for none (a stale entry, left
-- by an earlier message of the id, is none: tagged_get).
local function limits_key_of(mid)
  return tagged_get(K_LIMIT_KEY, mid, redis.call('hget', K_UDTS, mid)) or ''
end

-- limits_gcra answers whether the rate r allows a hand-out now (µs) under
-- field, and the new tat if so, else when the token comes due (µs).
local function limits_gcra(field, r, now_us)
  local tat = tonumber(redis.call('hget', K_RATE_TAT, field)) or now_us
  if tat - now_us > r.tau then return false, tat - r.tau end
  return true, math.max(tat, now_us) + r.t
end

-- limits_wake is set when a freed slot may let a sleeper hand something
-- out: the calling script wakes one.
local limits_wake = false

-- limits_unpark moves the first parked id of key that is still queued
-- back to be handed out, first in line, and answers whether it did.
local function limits_unpark(key, now)
  for _ = 1, 10 do
    -- (ZRANGE BYLEX, Redis 6.2, as BLMOVE: no command beyond the ACL list)
    local first = redis.call('zrange', K_PARKED, '[' .. key .. '\0', '(' .. key .. '\1', 'BYLEX', 'LIMIT', 0, 1)[1]
    if not first then return false end
    redis.call('zrem', K_PARKED, first)
    local mid = string.match(first, '^.-%z%d+%z(.*)$')
    redis.call('hdel', K_SLOTS, 'p:' .. mid)
    local base, in_backoff = message_status(mid, now)
    if base == 'queued' and not in_backoff then
      push_ready('rpush', mid)
      return true
    end
  end
  return false
end

-- limits_free frees the slot mid holds (held: its slots entry).
local function limits_free(mid, held, now)
  redis.call('hdel', K_SLOTS, 'h:' .. mid)
  local key = string.match(held, '^%d+ (.*)$') or ''
  local n = redis.call('hincrby', K_SLOT_COUNTS, 'q', -1)
  if n <= 0 then redis.call('hdel', K_SLOT_COUNTS, 'q') end
  local c = limits_cfg()
  if c and c.conc and n + 1 >= c.conc then limits_wake = true end
  if key ~= '' then
    local m = redis.call('hincrby', K_SLOT_COUNTS, 'k:' .. key, -1)
    if m <= 0 then redis.call('hdel', K_SLOT_COUNTS, 'k:' .. key) end
    if limits_unpark(key, now) then limits_wake = true end
  end
end

-- limits_unreserve drops mid's reservation of a key token, if any.
local function limits_unreserve(mid)
  redis.call('hdel', K_RATE_TAT, 'r:' .. mid)
end

-- limits_forget drops mid's parked entry and reservation (a deleted or
-- collected id).
local function limits_forget(mid)
  local member = redis.call('hget', K_SLOTS, 'p:' .. mid)
  if member then
    redis.call('zrem', K_PARKED, member)
    redis.call('hdel', K_SLOTS, 'p:' .. mid)
  end
  limits_unreserve(mid)
  redis.call('hdel', K_LIMIT_KEY, mid)
end

-- limits_refund gives back the rate tokens a released hand-out took: it
-- was never handled.
local function limits_refund(mid)
  local c = limits_cfg()
  if not c then return end
  if c.rate then
    local tat = tonumber(redis.call('hget', K_RATE_TAT, 'q'))
    if tat then redis.call('hset', K_RATE_TAT, 'q', limits_us(tat - c.rate.t)) end
  end
  if c.key_rate then
    local key = limits_key_of(mid)
    if key ~= '' then
      local tat = tonumber(redis.call('hget', K_RATE_TAT, 'k:' .. key))
      if tat then redis.call('hset', K_RATE_TAT, 'k:' .. key, limits_us(tat - c.key_rate.t)) end
    end
  end
end

-- The hook of outcome.lua: an outcome (any, once its lock is proven) or a
-- collection frees mid's slot; a release also refunds its tokens; an
-- 'expired' lock (the poll's wake) frees the slot alone.
local limits_now = nil
limits_freed = function(mid, why)
  if not limits_now then limits_now = server_now() end
  local now = limits_now
  local held = redis.call('hget', K_SLOTS, 'h:' .. mid)
  if held then limits_free(mid, held, now) end
  if why == 'release' then
    limits_refund(mid)
  elseif why == 'collect' then
    limits_forget(mid)
  end
end

-- limits_admit decides whether mid may be handed out now (ms), reading
-- only. It answers nil, nil, plan to hand it out (limits_take writes the
-- plan), or a refusal: 'stop' and when to poll again in ms (0: when woken)
-- when the queue's own limits refuse (nothing of the queue may go out),
-- 'park' when its key has no slot free, or 'rate' and when its key's
-- token comes due (ms), reserved by limits_reserve.
local function limits_admit(mid, now)
  local c = limits_cfg()
  if not c then return nil end
  local key = ''
  if c.key_rate or c.key_conc then key = limits_key_of(mid) end
  local plan = {key = key}
  if c.conc or c.key_conc then
    plan.slot = true
    plan.held = redis.call('hget', K_SLOTS, 'h:' .. mid)
    if not plan.held then
      local counts = redis.call('hmget', K_SLOT_COUNTS, 'q', 'k:' .. key)
      if c.conc and (tonumber(counts[1]) or 0) >= c.conc then return 'stop', 0 end
      if c.key_conc and key ~= '' then
        plan.key_slot = true
        if (tonumber(counts[2]) or 0) >= c.key_conc then return 'park', nil, plan end
      end
    end
  end
  local now_us = now * 1000
  if c.rate then
    local ok, v = limits_gcra('q', c.rate, now_us)
    if not ok then return 'stop', math.ceil(v / 1000) end
    plan.q_tat = v
  end
  if c.key_rate and key ~= '' then
    local reserved_at = tonumber(redis.call('hget', K_RATE_TAT, 'r:' .. mid))
    if reserved_at then
      -- (met before its token: on a list by a Carmine enqueue or a lap)
      plan.reserved = true
      if now < reserved_at then return 'rate', reserved_at, plan end
    else
      local ok, v = limits_gcra('k:' .. key, c.key_rate, now_us)
      if not ok then return 'rate', math.ceil(v / 1000), plan end
      plan.k_tat = v
    end
  end
  return nil, nil, plan
end

-- limits_trim_keys drops the state of up to 20 keys whose tat passed:
-- it reads as absent then.
local limits_trimmed = false
local function limits_trim_keys(now)
  if limits_trimmed then return end
  limits_trimmed = true
  local stale = redis.call('zrangebyscore', K_RATE_KEYS, '-inf', now, 'LIMIT', 0, 20)
  for _, key in ipairs(stale) do
    redis.call('hdel', K_RATE_TAT, 'k:' .. key)
    redis.call('zrem', K_RATE_KEYS, key)
  end
end

-- limits_set_key_tat writes a key's tat (µs) and its rate-keys entry.
local function limits_set_key_tat(key, tat, now)
  redis.call('hset', K_RATE_TAT, 'k:' .. key, limits_us(tat))
  redis.call('zadd', K_RATE_KEYS, math.ceil(tat / 1000), key)
  limits_trim_keys(now)
end

-- limits_reserve reserves mid's key token that comes due at at_ms: the
-- key's tat moves on by one token, as if mid were handed out then.
local function limits_reserve(mid, plan, at_ms, now)
  if plan.reserved then return end
  local c = limits_cfg()
  local tat = tonumber(redis.call('hget', K_RATE_TAT, 'k:' .. plan.key)) or now * 1000
  limits_set_key_tat(plan.key, tat + c.key_rate.t, now)
  redis.call('hset', K_RATE_TAT, 'r:' .. mid, at_ms)
end

-- limits_park parks mid (refused for want of a slot of its key).
local function limits_park(mid, key)
  if redis.call('hexists', K_SLOTS, 'p:' .. mid) == 1 then return end
  local seq = redis.call('hincrby', K_SLOT_COUNTS, 'seq', 1)
  local member = key .. '\0' .. string.format('%016d', seq) .. '\0' .. mid
  redis.call('zadd', K_PARKED, 0, member)
  redis.call('hset', K_SLOTS, 'p:' .. mid, member)
end

-- limits_take writes what limits_admit planned for mid's hand-out, locked
-- until locked_until (ms).
local function limits_take(mid, plan, locked_until, now)
  if plan.q_tat then redis.call('hset', K_RATE_TAT, 'q', limits_us(plan.q_tat)) end
  if plan.k_tat then limits_set_key_tat(plan.key, plan.k_tat, now) end
  if plan.reserved then limits_unreserve(mid) end
  if plan.slot then
    local key = ''
    if plan.held then
      key = string.match(plan.held, '^%d+ (.*)$') or ''
    else
      if plan.key_slot then key = plan.key end
      redis.call('hincrby', K_SLOT_COUNTS, 'q', 1)
      if key ~= '' then redis.call('hincrby', K_SLOT_COUNTS, 'k:' .. key, 1) end
      local member = redis.call('hget', K_SLOTS, 'p:' .. mid)
      if member then
        redis.call('zrem', K_PARKED, member)
        redis.call('hdel', K_SLOTS, 'p:' .. mid)
      end
    end
    redis.call('hset', K_SLOTS, 'h:' .. mid, locked_until .. ' ' .. key)
  end
end

-- limits_renew keeps mid's slot in step with its renewed lock.
local function limits_renew(mid, locked_until)
  if not feature_used('limits') then return end
  local held = redis.call('hget', K_SLOTS, 'h:' .. mid)
  if held then
    redis.call('hset', K_SLOTS, 'h:' .. mid, locked_until .. ' ' .. (string.match(held, '^%d+ (.*)$') or ''))
  end
end

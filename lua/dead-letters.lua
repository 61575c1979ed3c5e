-- dead-letters.lua (beyond Carmine): reading and acting on a queue's dead
-- letters (docs/protocol.md §11).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] the operation, then its arguments:
--   'page', limit, died_ms, mid: {mid, died_ms, record, ...}, at most
--     limit dead letters, newest first (by the time they died, then by id,
--     as dead-index orders them), starting after the letter (died_ms, mid)
--     whether or not it is still there; died_ms '' starts at the newest.
--     Letters that die meanwhile are newer, so a listing that goes on page
--     after page never sees one twice nor skips one that stays.
--   'ids', offset, limit: up to limit ids, oldest first, from offset
--   'get', mid...: {record or false, ...}, one per mid
--   'requeue', mid...: {answer, ...}, one per mid: 'requeued' (a fresh
--     message under the same id, at the back of mids-ready, its dead
--     letter gone), 'missing' (no such dead letter) or 'exists' (the queue
--     holds a message of that id: nothing changes)
--   'delete', mid...: {1 or 0, ...}: whether a dead letter was deleted
--   'delete-all': the number of dead letters deleted
-- A record is pack4's (outcome.lua, bury): {content, reason, error text,
-- attempts, first enqueued ms, died ms, lock time ms or '', its attempts'
-- errors (§17), and the message's own policy when it has one (§14)}.

local op = ARGV[1]

-- bytes_before tells whether a sorts before b byte by byte, as a sorted
-- set orders members of one score (Lua's own < follows the locale).
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

if op == 'page' then
  local limit = tonumber(ARGV[2])
  if limit <= 0 then return {} end
  local n = redis.call('zcard', K_DEAD_INDEX)
  -- start: the rank, newest first, of the first letter to list.
  local start = 0
  if ARGV[3] ~= '' then
    local died, after = ARGV[3], ARGV[4]
    -- The letters newer than (died, after): those that died later, and
    -- those of the same time whose id sorts after it, found by bisection
    -- among the ranks of that time (ids of one time sort descending).
    local lo = redis.call('zcount', K_DEAD_INDEX, '(' .. died, '+inf')
    local ties_end = lo + redis.call('zcount', K_DEAD_INDEX, died, died)
    local hi = ties_end
    while lo < hi do
      local r = math.floor((lo + hi) / 2)
      local m = redis.call('zrevrange', K_DEAD_INDEX, r, r)[1]
      if bytes_before(after, m) then lo = r + 1 else hi = r end
    end
    start = lo
    -- (the cursor's own letter, if still there, is at start: skip it)
    if start < ties_end and redis.call('zrevrange', K_DEAD_INDEX, start, start)[1] == after then
      start = start + 1
    end
  end
  if start >= n then return {} end
  local entries = redis.call('zrevrange', K_DEAD_INDEX, start, start + limit - 1, 'WITHSCORES')
  local mids = {}
  for i = 1, #entries, 2 do mids[#mids + 1] = entries[i] end
  local records = redis.call('hmget', K_DEAD, unpack(mids))
  local reply = {}
  for i, mid in ipairs(mids) do
    if records[i] then -- (an index entry without its record is skipped)
      reply[#reply + 1] = mid
      reply[#reply + 1] = entries[2 * i]
      reply[#reply + 1] = records[i]
    end
  end
  return reply
elseif op == 'ids' then
  local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  if limit <= 0 then return {} end
  return redis.call('zrange', K_DEAD_INDEX, offset, offset + limit - 1)
elseif op == 'get' then
  local reply = {}
  for i = 2, #ARGV do
    reply[i - 1] = redis.call('hget', K_DEAD, ARGV[i])
  end
  return reply
elseif op == 'delete' then
  local reply = {}
  for i = 2, #ARGV do
    reply[i - 1] = redis.call('hdel', K_DEAD, ARGV[i])
    redis.call('zrem', K_DEAD_INDEX, ARGV[i])
  end
  return reply
elseif op == 'delete-all' then
  local n = redis.call('zcard', K_DEAD_INDEX)
  redis.call('unlink', K_DEAD, K_DEAD_INDEX)
  return n
elseif op ~= 'requeue' then
  return redis.error_reply('ERR dead-letters: unknown operation ' .. tostring(op))
end

-- unpack4 reads pack4's items (outcome.lua).
local function unpack4(s)
  local items, i = {}, 1
  while i + 3 <= #s do
    local a, b, c, d = string.byte(s, i, i + 3)
    local n = a + 256 * b + 65536 * c + 16777216 * d
    items[#items + 1] = string.sub(s, i + 4, i + 3 + n)
    i = i + 4 + n
  end
  return items
end

refuse_when_full()
local now = server_now()
local reply, woken = {}, false
for i = 2, #ARGV do
  local mid = ARGV[i]
  local record = redis.call('hget', K_DEAD, mid)
  if not record then
    reply[i - 1] = 'missing'
  elseif message_status(mid, now) ~= 'nil' then
    reply[i - 1] = 'exists'
  else
    local items = unpack4(record)
    if redis.call('exists', K_MID_CIRCLE) == 0 then
      redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
    redis.call('hset', K_MESSAGES, mid, items[1] or '')
    redis.call('hset', K_UDTS, mid, now)
    if items[7] and items[7] ~= '' then
      redis.call('hset', K_LOCK_TIMES, mid, items[7])
    end
    if items[9] and items[9] ~= '' then
      -- The message's own policy comes back with it (§14), tagged with
      -- its new first-enqueue time.
      redis.call('hset', K_POLICY, mid, now .. ':' .. items[9])
      redis.call('hset', K_FEATURES, 'policy', '1')
    end
    redis.call('lpush', K_MIDS_READY, mid)
    redis.call('hdel', K_DEAD, mid)
    redis.call('zrem', K_DEAD_INDEX, mid)
    reply[i - 1] = 'requeued'
    woken = true
  end
end
if woken then wake_one() end
return reply

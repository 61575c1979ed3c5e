-- heartbeat.lua (beyond Carmine): the queue's live workers
-- (docs/protocol.md §12). Every running worker of this library beats every
-- few seconds: its id goes into the workers sorted set, scored by the
-- server time its heartbeat runs out, and what it says of itself into
-- worker-info. A worker whose process died stops beating, and its entry
-- is gone once that time passes: every call first prunes a bounded number
-- of expired entries, and a listing answers only the live ones. Carmine's
-- workers do not know the keys.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] the mode:
--   'beat': ARGV[2] worker id, ARGV[3] time to live in ms (at least 1),
--           ARGV[4] the worker's info (JSON), ARGV[5] prune bound.
--           Reply: the server time (ms).
--   'list': ARGV[2] prune bound, ARGV[3] most entries answered.
--           Reply: {now, id, expiry, info, id, expiry, info, ...}, the
--           live entries by expiry (info false if missing).
--   'gone': ARGV[2] worker id, removed at once (a graceful stop).
--           Reply: 1 if the entry was there, else 0.

-- The entries are tiny and a listing is what shows the workers alive, so
-- a full Redis must not refuse them (§9).
go_on_when_full()
local now = server_now()
local mode = ARGV[1]

-- prune removes up to limit entries whose heartbeat ran out (expiry <=
-- now), from both keys.
local function prune(limit)
  local ids = redis.call('zrangebyscore', K_WORKERS, '-inf', now, 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('zrem', K_WORKERS, unpack(ids))
    redis.call('hdel', K_WORKER_INFO, unpack(ids))
  end
end

if mode == 'beat' then
  local ttl = tonumber(ARGV[3])
  if not ttl or ttl < 1 then return redis.error_reply('ERR heartbeat ttl must be at least 1 ms') end
  prune(tonumber(ARGV[5]))
  redis.call('zadd', K_WORKERS, now + ttl, ARGV[2])
  redis.call('hset', K_WORKER_INFO, ARGV[2], ARGV[4])
  return now
end

if mode == 'list' then
  prune(tonumber(ARGV[2]))
  local live = redis.call('zrangebyscore', K_WORKERS, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
  local reply = {now}
  if #live == 0 then return reply end
  local ids = {}
  for i = 1, #live, 2 do ids[#ids + 1] = live[i] end
  local infos = redis.call('hmget', K_WORKER_INFO, unpack(ids))
  for i, id in ipairs(ids) do
    reply[#reply + 1] = id
    reply[#reply + 1] = tonumber(live[2 * i])
    reply[#reply + 1] = infos[i]
  end
  return reply
end

if mode == 'gone' then
  redis.call('hdel', K_WORKER_INFO, ARGV[2])
  return redis.call('zrem', K_WORKERS, ARGV[2])
end

return redis.error_reply('ERR heartbeat mode ' .. tostring(mode) .. ' unknown')

-- schedules.lua (beyond Carmine): reads and writes a queue's schedules
-- (docs/protocol.md §15). The spec of each is encoded by the client;
-- this script never looks inside it.
--
-- KEYS: schedules, schedule-next
-- ARGV[1]: the operation, then its arguments:
--   'peek': the schedule due first. Reply {now} when there is none, or
--     {now, name, next tick (ms), spec}; now is the server's time in ms,
--     and spec is '' unless the tick is due (next <= now).
--   'set', name, spec, next: stores the spec, and the next tick's time, or
--     no entry in schedule-next when next is '0' (paused). Reply 1 when the
--     name is new, 0 when it replaced a schedule.
--   'cas', name, old spec, spec, next: 'set' only if the schedule still
--     has the old spec. Reply 1 when written, 0 when the spec had changed,
--     -1 when there is no such schedule.
--   'del', name: deletes the schedule. Reply 1, or 0 when there was none.
--   'list': every schedule. Reply {now, {name, spec, next or ''}...}.
local K_SCHEDULES, K_SCHEDULE_NEXT = KEYS[1], KEYS[2]
local op = ARGV[1]

local function put(name, spec, next)
  local new = redis.call('hset', K_SCHEDULES, name, spec)
  if next == '0' then
    redis.call('zrem', K_SCHEDULE_NEXT, name)
  else
    redis.call('zadd', K_SCHEDULE_NEXT, next, name)
  end
  return new
end

if op == 'peek' then
  local now = server_now()
  local first = redis.call('zrange', K_SCHEDULE_NEXT, 0, 0, 'WITHSCORES')
  if #first == 0 then return {now} end
  local next = tonumber(first[2])
  -- The spec is read only for a tick that is due.
  if next > now then return {now, first[1], next, ''} end
  return {now, first[1], next, redis.call('hget', K_SCHEDULES, first[1]) or ''}
elseif op == 'set' then
  return put(ARGV[2], ARGV[3], ARGV[4])
elseif op == 'cas' then
  local cur = redis.call('hget', K_SCHEDULES, ARGV[2])
  if not cur then return -1 end
  if cur ~= ARGV[3] then return 0 end
  put(ARGV[2], ARGV[4], ARGV[5])
  return 1
elseif op == 'del' then
  redis.call('zrem', K_SCHEDULE_NEXT, ARGV[2])
  return redis.call('hdel', K_SCHEDULES, ARGV[2])
elseif op == 'list' then
  local now = server_now()
  local all = redis.call('hgetall', K_SCHEDULES)
  local out = {now}
  for i = 1, #all, 2 do
    local score = redis.call('zscore', K_SCHEDULE_NEXT, all[i])
    out[#out + 1] = {all[i], all[i + 1], score or ''}
  end
  return out
end
return redis.error_reply('ERR schedules.lua: unknown operation ' .. tostring(op))

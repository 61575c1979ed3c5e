-- batch-tick.lua: counting one member's final outcome in its batch
-- (docs/protocol.md §22), in the queue that receives the batch's
-- completion. The relay runs it for each tick record it finds in a
-- member queue's handoffs, then removes the record; a crash between the
-- two runs it again, so each tick has an id, kept in batch-seen, and a
-- tick seen before counts nothing.
--
-- KEYS: the completion queue's keys (prelude.lua).
-- ARGV[1]  the tick's id: the member's id and its first-enqueue time
-- ARGV[2]  's' for a success, 'd' for a dead letter, 'c' for a cancel (§20)
-- ARGV[3]  the batch id b
-- ARGV[4]  how long to keep a tick's id in batch-seen, and a completed
--          batch in batches, in ms
--
-- Reply: 'seen' (counted before), 'unknown' (no such batch: cleared),
-- 'counted', or 'complete' when this tick was the batch's last: the
-- completion record "C<b>" is then appended to the queue's own handoffs,
-- once (HSETNX on "<b>:done"), for the relay to enqueue with the counts.

go_on_when_full()

local tick, kind, b, keep_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = server_now()

-- batch-seen is trimmed by age, 100 at a time, by the ticks themselves;
-- its entry "done:<b>" (never a tick's id, which holds a '/') is the
-- completion of batch b, whose fields go with it.
local old = redis.call('zrangebyscore', K_BATCH_SEEN, '-inf', now - keep_ms, 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('zrem', K_BATCH_SEEN, unpack(old))
  for _, t in ipairs(old) do
    local done = string.match(t, '^done:([^/]+)$')
    if done then
      redis.call('hdel', K_BATCHES, done, done .. ':n', done .. ':s', done .. ':d', done .. ':at', done .. ':done')
    end
  end
end

if redis.call('zadd', K_BATCH_SEEN, 'NX', now, tick) == 0 then return 'seen' end
local total = tonumber(redis.call('hget', K_BATCHES, b .. ':n'))
if not total then return 'unknown' end
local field = ':s'
if kind == 'd' or kind == 'c' then field = ':' .. kind end
redis.call('hincrby', K_BATCHES, b .. field, 1)
local counts = redis.call('hmget', K_BATCHES, b .. ':s', b .. ':d', b .. ':c')
local s, d, c = tonumber(counts[1]) or 0, tonumber(counts[2]) or 0, tonumber(counts[3]) or 0
if s + d + c >= total and redis.call('hsetnx', K_BATCHES, b .. ':done', now) == 1 then
  redis.call('rpush', K_HANDOFFS, 'C' .. b)
  redis.call('zadd', K_BATCH_SEEN, now, 'done:' .. b)
  return 'complete'
end
return 'counted'

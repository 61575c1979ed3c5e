-- tick.lua (beyond Carmine): enqueues one tick of a schedule, once
-- (docs/protocol.md §15). Any number of schedulers, in any number of
-- processes, may find the same tick due; the first call moves the
-- schedule's score in schedule-next from the tick's time to the next
-- tick's, and every later call with the old time finds it moved and does
-- nothing: a compare and set on the score, with no leader. A scheduler
-- frozen past the tick finds the score moved when it wakes.
--
-- It is composed after lib.lua alone and binds its own few keys, as
-- enqueue-new.lua does: the queue's other keys are never touched.
--
-- KEYS: schedules, schedule-next, messages, udts, mids-ready, mid-circle,
--   isleep-a, isleep-b, lock-times, meta
-- ARGV[1]: the schedule's name
-- ARGV[2]: T, the tick's time (ms), which schedule-next must hold for it
-- ARGV[3]: the spec the scheduler read, which schedules must still hold
--   (a schedule replaced, paused or deleted meanwhile is left alone)
-- ARGV[4]: T', the next tick's time (ms), which replaces T
-- ARGV[5]: '1' to enqueue the tick's message, '0' to skip the tick (it was
--   missed by more than the scheduler's catch-up bound)
-- ARGV[6]: the message's id, derived from the name and T
-- ARGV[7]: its content; ARGV[8]: its lock time in ms ('0' for the
--   worker's); ARGV[9]: its metadata ('' for none)
--
-- Reply: 1 when this call moved the score (and enqueued the tick if asked
-- to), 0 when the score or spec had changed (another scheduler took the
-- tick, or the schedule changed): nothing was written.
local K_SCHEDULES, K_SCHEDULE_NEXT = KEYS[1], KEYS[2]
local K_MESSAGES, K_UDTS, K_MIDS_READY, K_MID_CIRCLE = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_ISLEEP_A, K_ISLEEP_B = KEYS[7], KEYS[8]
local K_LOCK_TIMES, K_META = KEYS[9], KEYS[10]
local name, t, spec, t_next = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local enqueue = ARGV[5] == '1'
local mid, content, lock_ms, meta = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]

-- Scores are integers of ms, which a double holds exactly: compared as
-- numbers, never as text (ZSCORE may answer 1e+15 forms).
if tonumber(redis.call('zscore', K_SCHEDULE_NEXT, name)) ~= tonumber(t) then return 0 end
local cur = redis.call('hget', K_SCHEDULES, name)
if not cur then
  -- A next tick with no schedule (left by a writer other than this
  -- library's scripts, which write and delete both together): dropped,
  -- so that it does not stand first forever.
  redis.call('zrem', K_SCHEDULE_NEXT, name)
  return 0
end
if cur ~= spec then return 0 end

-- The id is new unless a tick of this time was enqueued already (which the
-- compare and set above rules out while scores only grow): HSETNX stores
-- it once either way. As the script's first write it also refuses the
-- call before anything is written when Redis is over maxmemory.
if enqueue and redis.call('hsetnx', K_MESSAGES, mid, content) == 1 then
  redis.call('hset', K_UDTS, mid, server_now())
  if lock_ms > 0 then redis.call('hset', K_LOCK_TIMES, mid, lock_ms) end
  if meta ~= '' then redis.call('hset', K_META, mid, meta) end
  -- As enqueue.lua: the circle needs a look only when mids-ready was empty.
  if redis.call('lpush', K_MIDS_READY, mid) == 1 and redis.call('exists', K_MID_CIRCLE) == 0 then
    redis.call('lpush', K_MID_CIRCLE, 'end-of-circle')
  end
  move_sentinel(K_ISLEEP_A, K_ISLEEP_B)
end
redis.call('zadd', K_SCHEDULE_NEXT, t_next, name)
return 1

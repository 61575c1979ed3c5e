-- counts.lua: the queue's counts of docs/protocol.md §10, written once and
-- composed into every script that needs them (dequeue, queue-counts).

-- queue_counts answers, in O(1):
--   ntotal, the messages in the queue (each id once: the size of messages);
--   nlocked, the lock entries;
--   nbackoff, the backoff entries less those of messages in a dedupe
--     window (done with a backoff, in windows), so that such a message
--     counts once, as done;
--   ndone, the ids in done;
--   nqueued, ntotal less the three, at least 0;
--   ndead, the dead letters.
-- When only this library writes the queue, the entries the counts read are
-- those of live states (§11: locks and backoffs that ran out are deleted
-- when they fall due, handled messages are collected at once), and the
-- counts are exact but for entries due and not yet woken. A Carmine worker
-- leaves expired entries behind until a lap meets them; the counts are
-- then Carmine's formula's or better: ntotal counts each id once, and a
-- dedupe window is subtracted once, Carmine's too.
--
-- The ids both in done and in backoffs are dedupe windows. This library
-- indexes its own in windows and keeps nothing else in done, so while
-- done holds no more ids than windows, windows counts them in O(1). An id
-- a Carmine worker marked done is in done alone until one of this
-- library's laps meets it; then the windows are counted by reading done
-- and the backoffs of its ids (a command per thousand, O(size of done)), as long as
-- done holds at most max_done ids; beyond that, windows alone is
-- subtracted, as before. QueueCounts reads up to COUNT_DONE_MAX ids; the
-- poll's queue size, sampled often for the monitor and the throttle, up
-- to POLL_COUNT_DONE_MAX, so that a Carmine fleet's many done ids cost a
-- poll little.
local COUNT_DONE_MAX = 10000
local POLL_COUNT_DONE_MAX = 100

local function queue_counts(max_done)
  local ntotal = redis.call('hlen', K_MESSAGES)
  local nlocked, nbackoff = redis.call('hlen', K_LOCKS), redis.call('hlen', K_BACKOFFS)
  local ndone = redis.call('scard', K_DONE)
  local nwindows = redis.call('zcard', K_WINDOWS)
  if ndone > nwindows and ndone <= max_done and nbackoff > 0 then
    nwindows = 0
    local ids = redis.call('smembers', K_DONE)
    for i = 1, #ids, 1000 do -- unpack has a bound on what it returns
      local backoffs = redis.call('hmget', K_BACKOFFS, unpack(ids, i, math.min(i + 999, #ids)))
      for j = 1, #backoffs do
        if backoffs[j] then nwindows = nwindows + 1 end
      end
    end
  end
  nwindows = math.min(nwindows, ndone, nbackoff)
  nbackoff = nbackoff - nwindows
  local nqueued = ntotal - (nlocked + nbackoff + ndone)
  if nqueued < 0 then nqueued = 0 end
  return ntotal, nlocked, nbackoff, ndone, nqueued, redis.call('zcard', K_DEAD_INDEX)
end

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
-- leaves expired entries behind; the counts are then Carmine's formula's
-- or better: ntotal counts each id once, and a dedupe window is
-- subtracted once.
local function queue_counts()
  local ntotal = redis.call('hlen', K_MESSAGES)
  local nlocked, nbackoff = redis.call('hlen', K_LOCKS), redis.call('hlen', K_BACKOFFS)
  local ndone = redis.call('scard', K_DONE)
  local nwindows = math.min(redis.call('zcard', K_WINDOWS), ndone, nbackoff)
  nbackoff = nbackoff - nwindows
  local nqueued = ntotal - (nlocked + nbackoff + ndone)
  if nqueued < 0 then nqueued = 0 end
  return ntotal, nlocked, nbackoff, ndone, nqueued, redis.call('zcard', K_DEAD_INDEX)
end

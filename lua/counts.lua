-- counts.lua: the queue's counts of docs/protocol.md §10, written once and
-- composed into every script that needs them (dequeue, queue-counts).

-- queue_counts answers ntotal (the ids in mids-ready and mid-circle, less
-- the sentinel), the sizes of locks, backoffs and done, and nqueued, which
-- is ntotal less those three (Carmine's formula, which may count expired
-- entries), in O(1).
local function queue_counts()
  local ntotal = redis.call('llen', K_MIDS_READY) + redis.call('llen', K_MID_CIRCLE) - 1
  if ntotal < 0 then ntotal = 0 end
  local nlocked, nbackoff = redis.call('hlen', K_LOCKS), redis.call('hlen', K_BACKOFFS)
  local ndone = redis.call('scard', K_DONE)
  local nqueued = ntotal - (nlocked + nbackoff + ndone)
  if nqueued < 0 then nqueued = 0 end
  return ntotal, nlocked, nbackoff, ndone, nqueued
end

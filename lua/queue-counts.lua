-- queue-counts.lua: the queue's counts (docs/protocol.md §10), in one call.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV: none.
--
-- Reply: {ntotal, nlocked, nbackoff, ndone, nqueued, ndead, paused,
-- nresults} (queue_counts, counts.lua; paused is 1 while the queue is
-- paused, else 0; nresults the results kept, §21). It writes nothing.

local reply = {queue_counts(COUNT_DONE_MAX)}
reply[7] = redis.call('exists', K_PAUSED)
reply[8] = redis.call('zcard', K_RESULTS_INDEX)
return reply

-- queue-counts.lua: the queue's counts (docs/protocol.md §10), in one call.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV: none.
--
-- Reply: {ntotal, nlocked, nbackoff, ndone, nqueued} (queue_counts,
-- counts.lua). It writes nothing.

return {queue_counts()}

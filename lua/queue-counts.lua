-- queue-counts.lua: the queue's counts (docs/protocol.md §10), in one call.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV: none.
--
-- Reply: {ntotal, nlocked, nbackoff, ndone, nqueued, ndead, paused,
-- nresults, nprio_hi, nprio_lo, nhandoffs, nslots, nparked, limited}
-- (queue_counts, counts.lua; paused is 1
-- while the queue is paused, else 0; nresults the results kept, §21;
-- nprio_hi and nprio_lo are the lengths of prio-hi and prio-lo, §18: at
-- most the ready messages of each priority; nhandoffs the records
-- waiting in handoffs for a relay, §22; nslots and nparked the
-- concurrency slots held and the messages parked, and limited 1 when the
-- queue has limits set, §19). It writes nothing.

local reply = {queue_counts(COUNT_DONE_MAX)}
reply[7] = redis.call('exists', K_PAUSED)
reply[8] = redis.call('zcard', K_RESULTS_INDEX)
reply[9] = redis.call('llen', K_PRIO_HI)
reply[10] = redis.call('llen', K_PRIO_LO)
reply[11] = redis.call('llen', K_HANDOFFS)
reply[12] = tonumber(redis.call('hget', K_SLOT_COUNTS, 'q')) or 0
reply[13] = redis.call('zcard', K_PARKED)
reply[14] = redis.call('exists', K_LIMITS)
return reply

-- complete.lua: record the outcomes of handled messages (SPEC section 6),
-- each fenced on the lock its handling took (SPEC section 10).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV, in groups of four, one group per message:
--   mid, locked_until_ms (the token from poll.lua or renew.lua),
--   outcome ('success', 'retry' or 'error'), backoff in ms (0 for none)
--
-- Reply: one string per group, in order: 'ok', or 'lock-lost' when the
-- lock is no longer the one the handling took (it expired and the message
-- was handed out again, or the message is done or gone); then nothing is
-- written for that message.

return record_outcomes(1, #ARGV / 4, server_now())

-- pause.lua (beyond Carmine): pauses or resumes the queue for every worker
-- of this library, in every process (docs/protocol.md §10). While the
-- paused key is set, polls record outcomes and hand nothing out, and the
-- workers sleep on the resumed list, which pausing empties; enqueues go
-- on without waking them. Resuming puts one element in the resumed list,
-- on which every paused sleeper's blocking move rotates, so that it wakes
-- them all, and wakes a worker sleeping at the end of the queue, as an
-- enqueue does. Carmine's workers do not know these keys and go on working.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] '1' to pause, '0' to resume
--
-- Reply: 1 when the queue's state changed, 0 when it was so already.

if ARGV[1] == '1' then
  if redis.call('exists', K_PAUSED) == 1 then return 0 end
  redis.call('set', K_PAUSED, server_now())
  redis.call('del', K_RESUMED)
  return 1
end
if redis.call('del', K_PAUSED) == 0 then return 0 end
redis.call('rpush', K_RESUMED, '_')
wake_one()
return 1

-- pause.lua (beyond Carmine): pauses or resumes the queue for every worker
-- of this library, in every process (docs/protocol.md §10). While the
-- paused key is set, polls record outcomes and hand nothing out; enqueues
-- go on. Resuming wakes a sleeping worker, as an enqueue does; the others
-- poll again within their sleep. Carmine's workers do not know the key
-- and go on working.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1] '1' to pause, '0' to resume
--
-- Reply: 1 when the queue's state changed, 0 when it was so already.

if ARGV[1] == '1' then
  if redis.call('exists', K_PAUSED) == 1 then return 0 end
  redis.call('set', K_PAUSED, server_now())
  return 1
end
if redis.call('del', K_PAUSED) == 0 then return 0 end
wake_one()
return 1

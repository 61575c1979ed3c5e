-- outcome-ext.lua: the outcome code of extensions with keys of their own
-- (batches §22, results §21, a cancel's check §20), composed after
-- outcome.lua into every script that records outcomes but the lean poll's
-- (§4), whose queue uses none of them. Its functions are outcome.lua's
-- names (nil without this file), set here.

-- Follow-ups and batches (§22).

-- tick_batch appends to handoffs the tick of mid's final outcome (kind 's'
-- success, 'd' dead, 'c' cancelled, §20) when mid is a member of a batch: "T<kind>\n<first
-- enqueue time>\n<batch>\n<completion queue>\n<mid>", which the relay
-- counts in the completion queue's batches (batch-tick.lua), once per
-- message (the tick's id is the mid and its first-enqueue time udt, read
-- when not given).
function ext.tick_batch(mid, udt, kind)
  if not feature_used('batches') then return end
  udt = udt or redis.call('hget', K_UDTS, mid) or ''
  local b = policy_field(policy_of(mid, udt), 9) or ''
  if b == '' then return end
  redis.call('rpush', K_HANDOFFS, 'T' .. kind .. '\n' .. udt .. '\n' .. b .. '\n' .. mid)
end

-- trim_results drops the results older than results_max_age_ms and the
-- oldest beyond results_max_count, at most 100 of each more than this
-- call wrote, as trim_store (outcome.lua) does for dead letters: once per call, after
-- its outcomes (record_outcomes), so that the store never grows past its
-- bound by more than 100.
function ext.trim_results(now)
  trim_store(K_RESULTS, K_RESULTS_INDEX, results_max_age_ms, results_max_count, 100 + results_kept, now)
end

-- keep_result writes result, the bytes a handler gave with mid's success,
-- as results[mid] = "<now>:<result>", indexed by now in results-index, and
-- marks the queue as using results (features), so that from this call on
-- its final outcomes are published (notify_final). The call trims the
-- results once, after its outcomes (trim_results).
function ext.keep_result(mid, result, now)
  if not feature_used('results') then
    redis.call('hset', K_FEATURES, 'results', '1')
    features.results = true
  end
  redis.call('hset', K_RESULTS, mid, now .. ':' .. result)
  redis.call('zadd', K_RESULTS_INDEX, now, mid)
  results_kept = results_kept + 1
end

-- notify_final tells the waiters of a queue that uses results (§21) that
-- mid is finished (a success, with or without a result, a dead letter, or
-- a cancel, §20):
-- a PUBLISH of mid on the channel named as the results key. A waiter
-- subscribes before it reads, so it misses none. A PUBLISH refused (an
-- ACL user without the channel) fails nothing: waiters then find the
-- outcome at their next read.
function ext.notify_final(mid)
  if feature_used('results') then
    redis.pcall('publish', K_RESULTS, mid)
  end
end

-- Cancel (§20). cancel_asked tells whether a cancel of mid stands: the
-- queue uses the feature, and cancels holds an entry tagged with the
-- message's first-enqueue time (an entry of an earlier message of the
-- same id, left by a Carmine worker's collection, is stale).
function ext.cancel_asked(mid, udt)
  if not feature_used('cancel') then return false end
  return tagged_get(K_CANCELS, mid, udt or redis.call('hget', K_UDTS, mid)) ~= false
end

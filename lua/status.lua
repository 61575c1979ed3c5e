-- status.lua: the message status of SPEC section 2, written once and
-- composed into every script that needs it (enqueue, poll, status).

-- message_status returns the base status of mid at time now ('nil', 'done',
-- 'locked' or 'queued'), whether it is in backoff, and whether a requeue is
-- pending (in messages-rq or in the legacy requeue set).
local function message_status(mid, now)
  if redis.call('hexists', K_MESSAGES, mid) == 0 then
    return 'nil', false, false
  end
  local locked_until  = tonumber(redis.call('hget', K_LOCKS, mid)) or 0
  local backoff_until = tonumber(redis.call('hget', K_BACKOFFS, mid)) or 0
  local in_backoff  = now < backoff_until
  local has_requeue = redis.call('hexists', K_MESSAGES_RQ, mid) == 1
    or redis.call('sismember', K_REQUEUE, mid) == 1
  local base = 'queued'
  if redis.call('sismember', K_DONE, mid) == 1 then
    base = 'done'
  elseif now < locked_until then
    base = 'locked'
  end
  return base, in_backoff, has_requeue
end

-- status_name maps a base status and its flags to the status names of
-- SPEC section 2; '' stands for nil.
local function status_name(base, in_backoff, has_requeue)
  if base == 'queued' then
    if in_backoff then return 'queued-with-backoff' end
    return 'queued'
  elseif base == 'locked' then
    if has_requeue then return 'locked-with-requeue' end
    return 'locked'
  elseif base == 'done' then
    if has_requeue then return 'done-with-requeue' end
    if in_backoff then return 'done-with-backoff' end
    return 'done-awaiting-gc'
  end
  return ''
end

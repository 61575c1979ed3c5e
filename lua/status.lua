-- status.lua: the message status of docs/protocol.md §2, written once and
-- composed into every script that needs it (enqueue, poll, status). It
-- reads no more than the answer needs: a locked message's backoff, and the
-- requeue flag of a queued one, do not change their status.

-- message_status returns the base status of mid at time now ('nil', 'done',
-- 'locked' or 'queued') and, for 'done' and 'queued', whether it is in
-- backoff and whether a backoff entry (expired or not) exists, and for
-- 'queued' whether a lock entry (expired) exists. exists, when given, says
-- whether mid is in messages, for a caller that already read it.
local function message_status(mid, now, exists)
  if exists == nil then
    exists = redis.call('hexists', K_MESSAGES, mid) == 1
  end
  if not exists then
    return 'nil', false, false, false
  end
  local base, lock = 'queued', false
  if redis.call('sismember', K_DONE, mid) == 1 then
    base = 'done'
  else
    lock = redis.call('hget', K_LOCKS, mid)
    if now < (tonumber(lock) or 0) then
      return 'locked', false, false, true
    end
  end
  local backoff = redis.call('hget', K_BACKOFFS, mid)
  return base, now < (tonumber(backoff) or 0), backoff ~= false, lock ~= false
end

-- has_requeue tells whether a requeue of mid is pending: in messages-rq,
-- or in the legacy requeue set.
local function has_requeue(mid)
  return redis.call('hexists', K_MESSAGES_RQ, mid) == 1
    or redis.call('sismember', K_REQUEUE, mid) == 1
end

-- status_name maps mid's base status and backoff flag to the status names
-- of docs/protocol.md §2; '' stands for nil.
local function status_name(mid, base, in_backoff)
  if base == 'queued' then
    if in_backoff then return 'queued-with-backoff' end
    return 'queued'
  elseif base == 'locked' then
    if has_requeue(mid) then return 'locked-with-requeue' end
    return 'locked'
  elseif base == 'done' then
    if has_requeue(mid) then return 'done-with-requeue' end
    if in_backoff then return 'done-with-backoff' end
    return 'done-awaiting-gc'
  end
  return ''
end

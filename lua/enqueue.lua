-- enqueue.lua: add or update messages (docs/protocol.md §3), each decided on its
-- own, in order, as if enqueued one by one.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]: the call's token, drawn at random by the client
-- ARGV[2]: how long to keep the call's receipt at least, in ms
-- ARGV[3]: '1' to keep delayed messages off mid-circle, in due alone (no
--   Carmine worker reads the queue, §11), '0' to put them on both
-- ARGV[4..], in groups of nine, one group per message:
--   mid, encoded message, initial backoff in ms (0 for none), lock time in
--   ms (0 for the worker's default), then can-update, can-requeue and
--   reset-init-backoff, each '1' or '0', then the time to hand it out at
--   in Unix ms by the server's clock (0 for none; it replaces the initial
--   backoff by the time from now until then, 0 once it is past), then the
--   message's metadata as the client encoded it ('' for none), kept in meta
--   with the content (a pending requeue keeps the metadata there is)
--
-- Reply: one string per message, in order: 'added' or 'updated' on
-- success, or the reason of a refusal: 'already-queued', 'locked' or
-- 'backoff'.
--
-- The receipt (enqueue-receipts, see prelude.lua): a call that wrote
-- anything stores its reply under its token; a call that finds its
-- receipt is a resend of one that was applied (its reply was lost on the
-- way back), and answers that reply again without writing. A call that
-- wrote nothing leaves no receipt: a resend of it decides afresh, as the
-- first application changed nothing.
--
-- The sleep sentinel is moved once per call, after the last message: moving
-- it twice in one script would put it back where it was and wake nobody.

local CODES = {added = 'a', updated = 'u', ['already-queued'] = 'q', locked = 'l', backoff = 'b'}
local NAMES = {a = 'added', u = 'updated', q = 'already-queued', l = 'locked', b = 'backoff'}

local token, keep_ms = ARGV[1], tonumber(ARGV[2])
local index_only = ARGV[3] == '1'
local receipt, since = receipt_get(K_ENQUEUE_RECEIPTS, K_ENQUEUE_RECEIPTS_PREV, token)
if receipt then
  local reply = {}
  for i = 1, #receipt do
    reply[i] = NAMES[string.sub(receipt, i, i)]
  end
  return reply
end

refuse_when_full()

local now = server_now()
local woken = false
local wrote = false

-- One message's arguments, set by the loop below for the helpers.
local mid, content, init_backoff, lock_ms, can_update, can_requeue, reset_init_backoff, meta

-- store writes the message. fresh says that mid had no status: every
-- entry of a message goes when it is collected or deleted, so there is no
-- old lock time to delete then.
local function store(fresh)
  redis.call('hset', K_MESSAGES, mid, content)
  redis.call('hsetnx', K_UDTS, mid, now)
  if meta ~= '' then
    redis.call('hset', K_META, mid, meta)
  elseif not fresh then
    redis.call('hdel', K_META, mid)
  end
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
  elseif not fresh then
    redis.call('hdel', K_LOCK_TIMES, mid)
  end
end

local function store_requeue()
  redis.call('hset', K_MESSAGES_RQ, mid, content)
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES_RQ, mid, lock_ms)
  else
    redis.call('hdel', K_LOCK_TIMES_RQ, mid)
  end
end

-- set_init_backoff writes the message's backoff, and its due entry
-- (docs/protocol.md §11), so that a poll wakes it when the backoff ends. A
-- queued message whose backoff it removes goes to mids-ready, where polls
-- find it now rather than when its old backoff would have ended.
local function set_init_backoff()
  if init_backoff > 0 then
    redis.call('hset', K_BACKOFFS, mid, now + init_backoff)
    redis.call('zadd', K_DUE, now + init_backoff, mid)
  elseif redis.call('hdel', K_BACKOFFS, mid) == 1 then
    redis.call('zrem', K_DUE, mid)
    redis.call('lpush', K_MIDS_READY, mid)
  end
end

local function to_requeue()
  if has_requeue(mid) then
    if not can_update then return 'already-queued' end
    store_requeue()
    return 'updated'
  end
  store_requeue()
  return 'added'
end

local function enqueue()
  local base, in_backoff = message_status(mid, now)

  if base == 'nil' then
    if redis.call('exists', K_MID_CIRCLE) == 0 then
      redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
    -- A delayed message stands on mid-circle, where a Carmine worker
    -- finds it (unless the client says none reads the queue), and in due,
    -- where this library's polls find it when it falls due (§11).
    if init_backoff > 0 then
      -- A sleeping worker sleeps until the earliest due entry at most
      -- (§11): a delayed message wakes one only when it falls due sooner.
      if due_sooner(now + init_backoff) then woken = true end
      redis.call('hset', K_BACKOFFS, mid, now + init_backoff)
      redis.call('zadd', K_DUE, now + init_backoff, mid)
      if not index_only then
        redis.call('lpush', K_MID_CIRCLE, mid)
      end
    else
      redis.call('lpush', K_MIDS_READY, mid)
      woken = true
    end
    store(true)
    return 'added'
  elseif base == 'queued' then
    if can_update then
      if reset_init_backoff then set_init_backoff(); woken = true end
      store(false)
      return 'updated'
    elseif reset_init_backoff then
      set_init_backoff()
      woken = true
      return 'updated'
    end
    return 'already-queued'
  elseif base == 'locked' then
    if can_requeue then return to_requeue() end
    return 'locked'
  end

  -- done
  if in_backoff then
    if can_requeue then return to_requeue() end
    return 'backoff'
  end
  redis.call('lpush', K_MIDS_READY, mid)
  woken = true
  return to_requeue()
end

local reply, codes = {}, {}
for i = 4, #ARGV, 9 do
  mid, content = ARGV[i], ARGV[i + 1]
  init_backoff, lock_ms = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  can_update, can_requeue = ARGV[i + 4] == '1', ARGV[i + 5] == '1'
  reset_init_backoff = ARGV[i + 6] == '1'
  local at_ms = tonumber(ARGV[i + 7])
  meta = ARGV[i + 8]
  if at_ms > 0 then init_backoff = math.max(0, at_ms - now) end
  local answer = enqueue()
  reply[#reply + 1] = answer
  codes[#codes + 1] = CODES[answer]
  if answer == 'added' or answer == 'updated' then wrote = true end
end

if wrote then
  receipt_put(K_ENQUEUE_RECEIPTS, K_ENQUEUE_RECEIPTS_PREV, token, table.concat(codes), since, keep_ms, now)
end

-- wake one worker sleeping at the end of the queue (wake_one, prelude.lua).
if woken then
  wake_one()
end
return reply

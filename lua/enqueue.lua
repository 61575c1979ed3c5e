-- enqueue.lua: add or update messages (docs/protocol.md §3), each decided on its
-- own, in order, as if enqueued one by one.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]: the call's token, drawn at random by the client
-- ARGV[2]: how long to keep the call's receipt at least, in ms
-- ARGV[3]: '1' to keep delayed messages off mid-circle, in due alone (no
--   Carmine worker reads the queue, §11), '0' to put them on both
-- ARGV[4]: '1' on the call's first send, '0' on every send after it (the
--   client's Redis library sending it again), when the receipt is looked for
-- ARGV[5..], in groups of thirteen, one group per message:
--   mid, encoded message, initial backoff in ms (0 for none), lock time in
--   ms (0 for the worker's default), then can-update, can-requeue and
--   reset-init-backoff, each '1' or '0', then the time to hand it out at
--   in Unix ms by the server's clock (0 for none; it replaces the initial
--   backoff by the time from now until then, 0 once it is past), then the
--   message's metadata as the client encoded it ('' for none), kept in meta
--   with the content (a pending requeue keeps the metadata there is),
--   then the message's own policy as the client encoded it ('' for none,
--   §14), then '1' when the message has a dedupe window (UniqueFor), which
--   turns a refusal into 'duplicate-<the refusal>', else '0', then the
--   message's priority (§18): 'h' high, 'l' low, '' normal, then its limit
--   key (§19, '' for none)
--
-- Reply: one string per message, in order: 'added' or 'updated' on
-- success, or the reason of a refusal: 'already-queued', 'locked' or
-- 'backoff', or for a message with a dedupe window 'duplicate-queued',
-- 'duplicate-locked' or 'duplicate-backoff' (§14).
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
-- It is moved only when a sleeping worker has something to do: a message
-- added ready (or requeued from done) while mids-ready is short
-- (WAKE_BACKLOG, wake-backlog.lua), one added to a priority's list, or a delayed
-- one that comes due before every entry of due, so that a worker sleeping
-- until that entry sleeps less.
--
-- A new id, the common case, costs no read of its own: HSETNX on messages
-- both stores it and says it is new. Only an id the queue holds already
-- has its status read.

local token, keep_ms = ARGV[1], tonumber(ARGV[2])
local index_only = ARGV[3] == '1'
-- A first send cannot find a receipt under its token, drawn at random for
-- this call: only a later send of the call looks for one.
local first_send = ARGV[4] == '1'
local since
if not first_send then
  local receipt
  receipt, since = receipt_get(K_ENQUEUE_RECEIPTS, K_ENQUEUE_RECEIPTS_PREV, token)
  if receipt then
    local NAMES = {a = 'added', u = 'updated', q = 'already-queued', l = 'locked', b = 'backoff',
      Q = 'duplicate-queued', L = 'duplicate-locked', B = 'duplicate-backoff'}
    local reply = {}
    for i = 1, #receipt do
      reply[i] = NAMES[string.sub(receipt, i, i)]
    end
    return reply
  end
end

local now = server_now()
local woken = false
local wrote = false
-- How long mids-ready was after this call's last push onto it (0: none):
-- with nothing taken meanwhile, each enqueue pushes one id and moves the
-- sentinel once (none past WAKE_BACKLOG, which a list that nothing was
-- taken from never comes back under), so its parity says which isleep
-- list holds the sentinel. ready_pushed counts this call's pushes onto
-- it: the list held ready_len - ready_pushed ids before the call.
local ready_len, ready_pushed = 0, 0

-- One message's arguments, set by the loop below for the helpers.
local mid, content, init_backoff, lock_ms, can_update, can_requeue, reset_init_backoff, meta
local policy, unique, prio, limit_key

-- set_tagged writes value ('' for none) as mid's entry of hash, tagged
-- with its first-enqueue time udt (read by lib.lua's tagged_get), and
-- marks the queue as using feature; with no value, drop is set to delete
-- an entry the id has (an update's). An entry whose tag is not the
-- message's first-enqueue time is stale (a Carmine worker's collection
-- left it) and read as none, so a new id without a value writes nothing
-- here.
local function set_tagged(hash, feature, value, udt, drop)
  if value ~= '' then
    redis.call('hset', hash, mid, udt .. ':' .. value)
    -- (only when absent: features.limits may spell the limits, §19)
    redis.call('hsetnx', K_FEATURES, feature, '1')
  elseif drop then
    redis.call('hdel', hash, mid)
  end
end

-- set_policy writes the message's own policy (§14).
local function set_policy(udt, drop) set_tagged(K_POLICY, 'policy', policy, udt, drop) end

-- set_prio writes the message's priority (§18), 'h' or 'l'; a normal
-- one has no entry.
local function set_prio(udt, drop) set_tagged(K_PRIO, 'priority', prio, udt, drop) end

-- set_limit_key writes the message's limit key (§19).
local function set_limit_key(udt, drop) set_tagged(K_LIMIT_KEY, 'limits', limit_key, udt, drop) end

-- add writes the rest of a message new to the queue, whose content the
-- loop stored already. A new id has no entry in Carmine's hashes, lists
-- and sets (collection and delete remove them all), so add reads nothing
-- of it and deletes nothing there; only metadata that a Carmine worker's
-- collection left in meta is deleted, unless no Carmine worker reads the
-- queue.
local function add()
  redis.call('hset', K_UDTS, mid, now)
  set_policy(now, false)
  set_prio(now, false)
  set_limit_key(now, false)
  if meta ~= '' then
    redis.call('hset', K_META, mid, meta)
  elseif not index_only then
    -- A Carmine worker collects an id without our keys: metadata it left
    -- behind must not ride on the new message (§13).
    redis.call('hdel', K_META, mid)
  end
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
  end
  if init_backoff == 0 and prio ~= '' then
    -- (§18) onto its priority's list, and onto mid-circle, where a
    -- Carmine worker finds it, unless none reads the queue
    redis.call('lpush', (prio == 'h') and K_PRIO_HI or K_PRIO_LO, mid)
    if index_only then
      if redis.call('exists', K_MID_CIRCLE) == 0 then
        redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
      end
    elseif redis.call('lpush', K_MID_CIRCLE, mid) == 1 then
      redis.call('rpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
    woken = true
    return
  end
  if init_backoff == 0 then
    -- mids-ready is never left holding ids while mid-circle is missing
    -- (both go together, by ClearQueues alone), so the circle needs a
    -- look only when this push finds mids-ready empty.
    ready_len = redis.call('lpush', K_MIDS_READY, mid)
    ready_pushed = ready_pushed + 1
    if ready_len == 1 and redis.call('exists', K_MID_CIRCLE) == 0 then
      redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
    return
  end
  -- A delayed message stands on mid-circle, where a Carmine worker finds
  -- it (unless the client says none reads the queue), and in due, where
  -- this library's polls find it when it falls due (§11). A sleeping
  -- worker sleeps until due's earliest entry at most: it is woken, to
  -- sleep less, only when this one comes due before that entry.
  local at = now + init_backoff
  if due_sooner(at) then woken = true end
  redis.call('hset', K_BACKOFFS, mid, at)
  redis.call('zadd', K_DUE, at, mid)
  if index_only then
    if redis.call('exists', K_MID_CIRCLE) == 0 then
      redis.call('lpush', K_MID_CIRCLE, END_OF_CIRCLE)
    end
  elseif redis.call('lpush', K_MID_CIRCLE, mid) == 1 then
    -- The circle was missing: it gets its sentinel behind the id, as if
    -- the sentinel had been pushed first.
    redis.call('rpush', K_MID_CIRCLE, END_OF_CIRCLE)
  end
end

-- store writes the content of a message the queue holds already; the
-- first-enqueue time stays (set only if a writer before left none).
local function store()
  redis.call('hset', K_MESSAGES, mid, content)
  redis.call('hsetnx', K_UDTS, mid, now)
  local udt = redis.call('hget', K_UDTS, mid)
  set_policy(udt, true)
  set_prio(udt, true)
  set_limit_key(udt, true)
  if meta ~= '' then
    redis.call('hset', K_META, mid, meta)
  else
    redis.call('hdel', K_META, mid)
  end
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
  else
    redis.call('hdel', K_LOCK_TIMES, mid)
  end
end

local function store_requeue()
  redis.call('hset', K_MESSAGES_RQ, mid, content)
  if prio ~= '' then
    set_prio(redis.call('hget', K_UDTS, mid), true)
  else
    redis.call('hdel', K_PRIO, mid)
  end
  -- (§19) the requeue's limit key, as its priority; the slot a locked
  -- message holds keeps the key it was taken under
  if limit_key ~= '' then
    set_limit_key(redis.call('hget', K_UDTS, mid), true)
  else
    redis.call('hdel', K_LIMIT_KEY, mid)
  end
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES_RQ, mid, lock_ms)
  else
    redis.call('hdel', K_LOCK_TIMES_RQ, mid)
  end
end

-- set_init_backoff resets a queued message's backoff, and its due entry
-- (docs/protocol.md §11). Carmine's reset writes the backoff alone; ours
-- does a little more, each for a reason (§3):
--   * the message is queued, so a lock entry it has ran out: it goes, as
--     a poll would delete it at the due entry this overwrites, so that the
--     counts (§10) never read it as locked. Such a message was on no list
--     (a poll of this library handed it out), nor was one whose due entry
--     is due already, so one put in backoff goes
--     onto mid-circle as well (unless index_only), where Carmine's
--     protocol keeps a message in backoff and a later Carmine reset is
--     seen by the next lap;
--   * a backoff it removes leaves the due entry due now, so that the next
--     poll moves the message to mids-ready; and a sleeping worker, which
--     sleeps until due's earliest entry at most, is woken when the reset
--     makes the message due before that entry, so that it takes it at its
--     new time rather than at the end of its sleep.
local function set_init_backoff()
  local expired_lock = redis.call('hdel', K_LOCKS, mid) == 1
  if init_backoff > 0 then
    -- On no list too: one whose due entry is due already (a lock that ran
    -- out and was taken back by an earlier reset, a backoff that ended):
    -- it waits for a poll to move it to mids-ready.
    local on_no_list = expired_lock
    if not on_no_list and not index_only then
      local due = tonumber(redis.call('zscore', K_DUE, mid))
      on_no_list = due ~= nil and due <= now
    end
    local at = now + init_backoff
    if due_sooner(at) then woken = true end
    redis.call('hset', K_BACKOFFS, mid, at)
    redis.call('zadd', K_DUE, at, mid)
    if on_no_list and not index_only then
      redis.call('lpush', K_MID_CIRCLE, mid)
    end
  elseif redis.call('hdel', K_BACKOFFS, mid) == 1 then
    if due_sooner(now) then woken = true end
    redis.call('zadd', K_DUE, now, mid)
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

-- enqueue decides a message the queue holds already (§3).
local function enqueue()
  local base, in_backoff = message_status(mid, now, true)

  if base == 'queued' then
    if can_update then
      if reset_init_backoff then set_init_backoff() end
      store()
      return 'updated'
    elseif reset_init_backoff then
      set_init_backoff()
      return 'updated'
    end
    if unique then return 'duplicate-queued' end
    return 'already-queued'
  elseif base == 'locked' then
    if can_requeue then return to_requeue() end
    if unique then return 'duplicate-locked' end
    return 'locked'
  end

  -- done
  if in_backoff then
    if can_requeue then return to_requeue() end
    if unique then return 'duplicate-backoff' end
    return 'backoff'
  end
  ready_len = redis.call('lpush', K_MIDS_READY, mid)
  ready_pushed = ready_pushed + 1
  return to_requeue()
end

local CODES = {added = 'a', updated = 'u', ['already-queued'] = 'q', locked = 'l', backoff = 'b',
  ['duplicate-queued'] = 'Q', ['duplicate-locked'] = 'L', ['duplicate-backoff'] = 'B'}
local reply, codes = {}, {}
for i = 5, #ARGV, 13 do
  mid, content = ARGV[i], ARGV[i + 1]
  init_backoff, lock_ms = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  can_update, can_requeue = ARGV[i + 4] == '1', ARGV[i + 5] == '1'
  reset_init_backoff = ARGV[i + 6] == '1'
  local at_ms = tonumber(ARGV[i + 7])
  meta = ARGV[i + 8]
  policy, unique, prio = ARGV[i + 9], ARGV[i + 10] == '1', ARGV[i + 11]
  limit_key = ARGV[i + 12]
  if at_ms > 0 then init_backoff = math.max(0, at_ms - now) end
  -- HSETNX both writes a new message's content and tells whether the id
  -- is new; as the script's first write, and one Redis checks memory
  -- before, it also refuses the call before anything is written when
  -- Redis is full (§9; it is always the first write: reads alone come
  -- before it).
  local answer
  if redis.call('hsetnx', K_MESSAGES, mid, content) == 1 then
    add()
    answer = 'added'
  else
    answer = enqueue()
  end
  reply[#reply + 1] = answer
  codes[#codes + 1] = CODES[answer]
  if answer == 'added' or answer == 'updated' then wrote = true end
end

if wrote then
  if not first_send then
    receipt_put(K_ENQUEUE_RECEIPTS, K_ENQUEUE_RECEIPTS_PREV, token, table.concat(codes), since, keep_ms, now)
  elseif string.byte(token, -1) == 48 then
    -- One first send in sixteen (the token's last digit is '0') reads
    -- when the receipts' generation began, and starts a new one when it
    -- is old enough; the others only write. A generation so ends a few
    -- calls late, which only keeps its receipts longer; one that an
    -- unsampled call began gets its start from the next sampled call,
    -- later than its true start, which does the same.
    since = tonumber(redis.call('hget', K_ENQUEUE_RECEIPTS, '@since'))
    receipt_put(K_ENQUEUE_RECEIPTS, K_ENQUEUE_RECEIPTS_PREV, token, table.concat(codes), since, keep_ms, now)
  else
    redis.call('hset', K_ENQUEUE_RECEIPTS, token, table.concat(codes))
  end
end

-- wake one worker sleeping at the end of the queue (wake_one, prelude.lua),
-- looking first where the sentinel went if nothing was taken since the
-- queue's first enqueue (an odd length: b); for ids pushed onto
-- mids-ready, only while it held fewer than WAKE_BACKLOG ids each before
-- the call (wake-backlog.lua), as enqueue-new.lua does.
if ready_pushed > 0 and ready_len - ready_pushed < WAKE_BACKLOG * ready_pushed then woken = true end
if woken then
  wake_one(ready_len % 2 == 1)
end
return reply

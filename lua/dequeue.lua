-- dequeue.lua: up to ARGV[7] worker steps of docs/protocol.md §4, run back to back,
-- stopping early after the first 'sleep' (§4, a call of many steps),
-- after recording the outcomes of earlier handlings and waking what fell
-- due (§11). With no steps to take, it only records outcomes (the worker's
-- flusher calls it so).
--
-- KEYS: the queue's keys (prelude.lua): all 52, or in a lean call the
--            first 38 (see "The lean call" below); then the keys of the
--            queues follow-ups go to (ARGV[22+7n])
-- ARGV[1]    the worker's default lock time in ms
-- ARGV[2..6] the five end-of-queue sleep times in ms
-- ARGV[7]    the most steps to take (0 to only record outcomes)
-- ARGV[8]    the most messages to hand out: the call stops after that many
--            'handle' steps
-- ARGV[9]    '1' to answer the queue size, '0' to spare its reads
-- ARGV[10]   the poller's id, drawn at random by the worker
-- ARGV[11]   seq: this call's number among its poller's calls, from 1 up
-- ARGV[12]   confirmed: the number of the poller's last call whose reply it
--            received (0 for none)
-- ARGV[13]   how long to keep the poller's receipt at least, in ms
-- ARGV[14]   the most dead letters to keep (0: no bound by count)
-- ARGV[15]   the longest to keep a dead letter, in ms (0: no bound by age)
-- ARGV[16]   quarantine after: a message handed out this many times without
--            an outcome is buried instead of handed out again (0: never)
-- ARGV[17]   n, the number of outcomes to record before polling
-- ARGV[18]   '1' when no Carmine worker reads the queue (index_only,
--            outcome.lua; §11), else '0'
-- ARGV[19..] n groups of seven: mid, locked_until_ms (the token from a poll
--            or a renewal), outcome ('success', 'retry', 'dead' or
--            'release'), backoff in ms (0 for none; for 'dead', the dedupe
--            window to keep, §14), error text ('' but for 'dead' and a
--            failed 'retry', attempt-errors.lua); any other outcome fails
--            the call with an error reply MQOUTCOME before anything is
--            written; then the result of a success ('' for none, §21), the
--            follow-ups of a success as the client encoded them ('' for
--            none), enqueued or appended to handoffs with the outcome
--            (§22; outcome.lua, hand_off)
-- ARGV[19+7n] held (optional): how many messages the calling worker holds
--            besides those this call hands out (absent or negative: not
--            told); see "Quarantine without innocent victims" below
-- ARGV[20+7n], ARGV[21+7n] (optional) the most results to keep and the
--            longest to keep one, in ms (0 or absent: no bound; §21)
-- ARGV[22+7n] (optional) the KEYS index of the first key of the queues
--            that follow-ups are enqueued to by this call (§22, "In the
--            script"; outcome.lua, in_script), eight keys each, after the
--            queue's own (absent or 0: none)
-- ARGV[23+7n..] (optional) the block: the id and content of each
--            follow-up whose success's field is a 'B' mark (§22, "The
--            block"; followups.lua), by target in ascending group order
--
-- Reply: {queue_size, outcomes, step, step, ...} where queue_size is nqueued
-- of §10 after the steps (-1 when not asked for), outcomes the
-- results of the outcomes, one per group, 'ok' or 'lock-lost' (the lock is
-- no longer the one the handling took: it expired and the message was
-- handed out again, or the message is done or gone; nothing is written for
-- it then), and each step is one of
--   {'sleep', sleep_ms, list ('a' or 'b', or 'resumed' on a paused queue),
--   ndry_runs, until_due}, the only step of a call on a paused queue;
--   until_due is 1 when sleep_ms was shortened to end when the earliest
--   due entry falls due, else 0
--   {'skip', reason}
--   {'handle', mid, content, attempt, lock_ms, first_enqueued_ms,
--    locked_until_ms, now_ms, metadata ('' for none), due_ms[, policy]}
--   where due_ms is when the message was due: the later of its first
--   enqueue and the end of the backoff it waited out, if this call knows
--   it (§16), and policy the message's own policy (§14), present only
--   when it has one
--   {'solo', ...as 'handle'}: a suspect handed out alone (the call's
--    only hand-out, and its last step; or, set aside for its lock time,
--    the last hand-out of a busy call)
-- locked_until_ms is the fencing token for outcomes and renew.lua.
--
-- The receipt. A poller (one polling loop of a worker, or its flusher)
-- makes one call at a time and numbers them. Its receipt (poll-receipts,
-- see prelude.lua) holds what its latest call that had to leave one
-- applied: {seq, the answers to its outcomes ('o' ok, 'l' lock-lost, one
-- each), the call's now and default lock time, then each mid it handed
-- out}; a handed-out message's lock token is that now plus its lock time
-- (lock-times, which does not change while it is locked, or the default).
-- A call whose number is above confirmed applied but its reply never
-- reached the poller (the connection dropped after Redis answered, or the
-- client gave up waiting; go-redis may also resend the very same call). So
-- when a call finds such a receipt, it gives back the messages that call
-- handed out (the 'release' outcome: unlocked, attempt uncounted, first in
-- line, and this call may take them again at once) and takes the answers
-- of its outcomes from the receipt: the poller sends the outcomes of
-- unconfirmed calls again, first and in the same order, and they are not
-- recorded twice. A call that finds a receipt of a later call is stale
-- (delayed in the network or in a frozen Redis, long after its poller gave
-- up on it) and does nothing.

go_on_when_full()

local argv = ARGV -- (a local: each read of the global is a lookup)
local poller, seq, confirmed = argv[10], tonumber(argv[11]), tonumber(argv[12])
local default_lock_ms = tonumber(argv[1])
local max_steps = tonumber(argv[7])
local max_handles = tonumber(argv[8])
dead_max_count, dead_max_age_ms = tonumber(argv[14]), tonumber(argv[15])
local quarantine_after = tonumber(argv[16])
local n_outcomes = tonumber(argv[17])
if ext.keep_result then -- (only a composition that keeps results reads their bounds, §21)
  results_max_count = tonumber(argv[20 + OUTCOME_ARGS * n_outcomes]) or 0
  results_max_age_ms = tonumber(argv[21 + OUTCOME_ARGS * n_outcomes]) or 0
end
if ext.in_script then
  ext.in_script.first = tonumber(argv[22 + OUTCOME_ARGS * n_outcomes]) or 0
  ext.in_script.base = 23 + OUTCOME_ARGS * n_outcomes -- (the block's first index, §22)
end
index_only = argv[18] == '1'
local now = server_now()

local bad, carries = check_outcomes(19, n_outcomes)
if bad then return bad end

-- The lean call (§4). A queue that uses no extension with keys of its
-- own (the 39th to the 52nd: results .. limit-key) is polled with its
-- first 38 keys only, by a composition without limits.lua and
-- outcome-ext.lua, and without followups.lua unless the call enqueues
-- follow-ups here: Redis makes and binds 14 strings fewer per call, and
-- none of those files' closures (some 40 of the 94 the full poll makes).
-- A queue that uses limits (§19) but none of the others is polled with
-- every key by the lean composition with limits.lua (dequeue-limits), the
-- outcome code of results, batches, cancels and follow-ups left out.
-- Such a call checks, before it writes anything, that the queue still
-- uses none of them (another script may have marked one since the client
-- chose: a cancel, a progress, limits) and that none of its outcomes
-- carries a result or follow-ups for the relay; otherwise it answers
-- MQKEYS having written nothing, and the client sends the same call again
-- with every key to the full composition, as it does from then on for
-- that queue; or, a call without limits.lua or its keys on a queue that
-- uses limits and no other, MQLIMITS, and the client sends it again to
-- dequeue-limits, as it does from then on for that queue. (The queue's
-- own keys end before the follow-ups' targets, ARGV[22+7n], when the call
-- carries those.)
local own_keys = tonumber(argv[22 + OUTCOME_ARGS * n_outcomes]) or 0
own_keys = (own_keys > 0) and (own_keys - 1) or #KEYS
if own_keys < 52 or ext.cancel_asked == nil then -- (a lean composition: no outcome-ext.lua)
  feature_used('results') -- (reads every feature, into features)
  local f = features
  if f.results or f.handoffs or f.batches or f.cancel or f.progress then
    return redis.error_reply('MQKEYS the queue uses an extension with keys of its own: the poll needs all of its keys')
  end
  -- (follow-ups enqueued in the script, §22, need none of them:
  -- check_outcomes told)
  if carries then
    return redis.error_reply('MQKEYS an outcome with a result or follow-ups for the relay needs all of the queue\'s keys')
  end
  if f.limits and (own_keys < 52 or ext.limits_load == nil) then
    return redis.error_reply('MQLIMITS the queue uses limits: the poll needs limits.lua and all of its keys')
  end
  ext.lean_call = true
end

-- (§19) the limits' writes wait for the call's last flush
if ext.limits_flush then limits_deferred = true end
local known, consumed = '', false
local receipt, since = receipt_get(K_POLL_RECEIPTS, K_POLL_RECEIPTS_PREV, poller)
if receipt then
  local items = unpack_items(receipt)
  local receipt_seq = tonumber(items[1])
  if receipt_seq > seq then
    return redis.error_reply('MQSTALE poll call ' .. seq .. ' came after call ' .. receipt_seq)
  end
  if receipt_seq > confirmed then
    known, consumed = items[2], true
    local unlocked = {}
    local then_ms, then_lock_ms = tonumber(items[3]), tonumber(items[4])
    for i = 5, #items do
      local mid = items[i]
      local token = then_ms + (tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or then_lock_ms)
      record_outcome(mid, token, 'release', 0, '', now, default_lock_ms, unlocked)
    end
  end
end
local outcomes = record_outcomes(19, n_outcomes, now, default_lock_ms, known)
-- An outcome that made a message ready, or due sooner than any other,
-- wakes a sleeping worker (§6), before this call's own sleep step picks
-- the list to block on.
if outcomes_wake then wake_one() end
if feature_used('limits') then
  -- (§19) a slot an outcome freed wakes a sleeper too, once
  if limits_wake and not outcomes_wake then wake_one() end
  limits_wake = false
end

-- useful is set once a step did useful work; ndry-runs is then written
-- as 0 once, before a sleep step reads it or at the end, which leaves the
-- same state as writing it at every such step.
local useful = false

-- ready_empty is set once mids-ready was found empty: nothing but this
-- call's own steps (did-requeue) can fill it again before the call ends.
local ready_empty = false

-- hi_empty and lo_empty are set once prio-hi and prio-lo were found
-- empty (or the queue never used priorities, §18: then they are never
-- read).
local hi_empty, lo_empty = true, true

-- Owed pushes onto mid-circle. A step that keeps a mid on mid-circle (the
-- sentinel, a message locked, and one waiting out a backoff unless
-- index_only, as Carmine's poll keeps them) owes a
-- push onto its left end; the owed pushes are gathered and sent as one
-- LPUSH, which leaves the same state as §4's step-by-step writes: sent in
-- order, they build the same left end, and they are sent before anything
-- else reads the list's length; no pop of this call reaches them, since a
-- lap ends at the sentinel, which ends the call (if the list lacks the
-- sentinel and runs empty, they are sent and the pop is tried again).
local circle_back = {}

local function push_circle_back()
  if #circle_back > 0 then
    call_each('lpush', K_MID_CIRCLE, circle_back)
    circle_back = {}
  end
end

local function flush()
  push_circle_back()
  flush_gathered()
end

-- sleep_list answers the isleep list a sleep step blocks on: the one that
-- does not hold the sentinel. There is one sentinel between the two lists;
-- should another writer have pushed more, it keeps one, so that every
-- sleeper blocks again.
local function sleep_list()
  local na, nb = redis.call('llen', K_ISLEEP_A), redis.call('llen', K_ISLEEP_B)
  if na > 0 and nb > 0 then
    redis.call('del', K_ISLEEP_B)
    nb = 0
  end
  if na > 1 then
    redis.call('ltrim', K_ISLEEP_A, '0', '0')
  elseif nb > 1 then
    redis.call('ltrim', K_ISLEEP_B, '0', '0')
  end
  if na > 0 then return 'b' end
  return 'a'
end

-- settle_done takes a done message out of its backoff: its pending requeue
-- becomes the message (did-requeue), or it is collected (did-gc). A batch
-- member that a Carmine worker finished ticks its batch here, as a
-- success (§22): this library's success ticked at its outcome and left
-- the content empty (enter_window) or collected the message at once; a
-- member with a requeue pending is left alone.
local function settle_done(mid)
  if feature_used('batches') and not has_requeue(mid) and redis.call('hget', K_MESSAGES, mid) ~= '' then
    ext.tick_batch(mid, nil, 's')
  end
  local reason = finish(mid, now, default_lock_ms)
  if reason == 'did-requeue' then
    ready_empty = false
    -- (a requeue of a high or low message goes to its list, §18)
    if feature_used('priority') then hi_empty, lo_empty = false, false end
  end
  return reason
end

-- absent_if_collected answers message_status's exists argument for mid:
-- false once this call collected it, else nil (read it).
local function absent_if_collected(mid)
  if collected[mid] then return false end
  return nil
end

-- wake (§11) takes what fell due from due and windows, at most limit of
-- each. A message whose lock ran out or whose backoff ended goes to the
-- right of mids-ready, its expired entry deleted, so that this call's
-- steps take it first; a dedupe window that ended is settled. An entry
-- whose time moved on (a renewed lock, an updated backoff) is written
-- again with the new time; one of a message gone is dropped. A queued
-- message whose backoff moved on (a Carmine enqueue reset it, which
-- writes backoffs alone) loses the lock that ran out, if any, and unless
-- index_only goes onto mid-circle too, where Carmine's protocol keeps a
-- message in backoff: it may have been on no list (its entry was the
-- expiry of the lock this library's poll wrote), and a later Carmine
-- reset of that backoff must find it on a lap.
--
-- woke_due keeps, by mid, the end of the backoff of each message this
-- call woke, whose entry it deleted, so that a step of this call that
-- hands it out answers when it was due (queueing time, §16).
local woke_due = {}
local function wake(limit)
  local ready, gone = {}, {}
  for _, mid in ipairs(redis.call('zrangebyscore', K_DUE, '-inf', now, 'LIMIT', 0, limit)) do
    local base, in_backoff, has_backoff, has_lock = message_status(mid, now, absent_if_collected(mid))
    -- (§19) a slot held past its lock (its process died) is freed
    if base ~= 'locked' and feature_used('limits') then ext.limits_freed(mid, 'expired', now) end
    if base == 'locked' then
      index_due(mid, tonumber(redis.call('hget', K_LOCKS, mid)))
    elseif base == 'queued' and in_backoff then
      if has_lock then redis.call('hdel', K_LOCKS, mid) end
      index_due(mid, tonumber(redis.call('hget', K_BACKOFFS, mid)))
      if not index_only then circle_back[#circle_back + 1] = mid end
    else
      gone[#gone + 1] = mid
      if base == 'queued' then
        redis.call('hdel', K_LOCKS, mid)
        if has_backoff then
          woke_due[mid] = tonumber(redis.call('hget', K_BACKOFFS, mid))
          redis.call('hdel', K_BACKOFFS, mid)
        end
        table.insert(ready, 1, mid)
      elseif base == 'done' then
        if in_backoff then
          gathered.windows[#gathered.windows + 1] = tonumber(redis.call('hget', K_BACKOFFS, mid))
          gathered.windows[#gathered.windows + 1] = mid
        else
          settle_done(mid)
        end
      end
    end
  end
  for _, mid in ipairs(redis.call('zrangebyscore', K_WINDOWS, '-inf', now, 'LIMIT', 0, limit)) do
    local base, in_backoff = message_status(mid, now, absent_if_collected(mid))
    if base == 'done' and in_backoff then
      gathered.windows[#gathered.windows + 1] = tonumber(redis.call('hget', K_BACKOFFS, mid))
      gathered.windows[#gathered.windows + 1] = mid
    elseif base == 'done' then
      settle_done(mid)
    else
      redis.call('zrem', K_WINDOWS, mid)
    end
  end
  if #gone > 0 then call_each('zrem', K_DUE, gone) end
  if #ready > 0 and feature_used('priority') then
    -- (§18) each to its priority's list, in the same order
    local normal = {}
    for _, mid in ipairs(ready) do
      local list = prio_list(mid)
      if list then
        push_ready('rpush', mid)
        if list == K_PRIO_HI then hi_empty = false else lo_empty = false end
      else
        normal[#normal + 1] = mid
      end
    end
    ready = normal
  end
  if #ready > 0 then
    call_each('rpush', K_MIDS_READY, ready)
    ready_empty = false
  end
end

-- take takes the next mid (step 1): from mids-ready's right end, or else
-- from mid-circle's right end, and tells which; on a queue that ever used
-- priorities (§18), prio-hi comes before mids-ready and prio-lo after it,
-- and the third answer is the priority of a mid taken from them.
local function take()
  if not hi_empty then
    local mid = redis.call('rpop', K_PRIO_HI)
    if mid then return mid, false, 'h' end
    hi_empty = true
  end
  if not ready_empty then
    local mid = redis.call('rpop', K_MIDS_READY)
    if mid then return mid, false end
    ready_empty = true
  end
  if not lo_empty then
    local mid = redis.call('rpop', K_PRIO_LO)
    if mid then return mid, false, 'l' end
    lo_empty = true
  end
  local mid = redis.call('rpop', K_MID_CIRCLE)
  if (not mid) and #circle_back > 0 then
    push_circle_back()
    mid = redis.call('rpop', K_MID_CIRCLE)
  end
  return mid, true
end

-- sleep_step answers the sleep step: the end-of-queue sleep by ndry-runs,
-- shortened to end when the earliest due entry falls due.
local function sleep_step(sleep_ms, ndry_runs)
  flush_gathered() -- so that due holds the times written so far
  local until_due = 0
  local first = redis.call('zrange', K_DUE, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(1, tonumber(first[2]) - now)
    if wait < sleep_ms then
      sleep_ms, until_due = wait, 1
    end
  end
  return {'sleep', sleep_ms, sleep_list(), ndry_runs, until_due}
end

-- metadata_of answers mid's metadata, '' for none; it reads meta only
-- when the queue has any (one EXISTS per call).
local has_meta = nil
local function metadata_of(mid)
  if has_meta == nil then
    has_meta = redis.call('exists', K_META) == 1
  end
  if not has_meta then return '' end
  return redis.call('hget', K_META, mid) or ''
end

-- Quarantine without innocent victims (§11). A suspect is a message with
-- a lost hand-out: handed out before without an outcome recorded
-- (nattempts less noutcomes, this hand-out aside; a release uncounts its
-- attempt). Its loss proves nothing when its process held other messages
-- too: any of them may have killed it. So a suspect is handed out only
-- to a call whose worker holds nothing (held, ARGV[19+7n], is 0), as the
-- call's only hand-out (step 'solo', which ends the call; the worker
-- takes nothing more until it is done with it); a call whose worker holds
-- messages, or that handed out one already, sets it aside (skip
-- 'suspect'): it goes back to the right of mids-ready at the end of the
-- call, first in line for the next call, and a sleeper is woken to take
-- it; once it has waited so for its lock time (no worker holding nothing
-- came: every one is busy, or stuck), it goes to the next call, busy or
-- not, as that call's last hand-out, step 'solo' too: its worker takes
-- nothing more until done with it, and its loss is charged as alone, so
-- that a poison message dies at most quarantine_after times. A call that
-- does not tell held, or whose worker never quarantines
-- (quarantine_after 0), hands suspects out as any message.
-- nsolo[mid] is "<solo hand-outs lost> <attempt> <noutcomes> <aside>",
-- the middle two taken at its latest solo hand-out: a later hand-out that
-- finds no hand-out and no outcome since then counts that one as lost
-- alone; aside is when it was first set aside since it was last handed
-- out (0: not set aside).
-- Burial: a message is charged with its first lost hand-out (the one
-- that made it a suspect: alone or not, no one can tell) and with every
-- one lost alone since, and buried once charged with quarantine_after;
-- losses in a crowd beyond the first (a caller that does not tell held)
-- are not charged, but a message lost 4 x quarantine_after times in all
-- is buried too, so that none loops for ever. With one handler thread,
-- every loss is charged.
local held = tonumber(ARGV[19 + OUTCOME_ARGS * n_outcomes]) or -1
local handed = {}     -- the mids this call handed out
local solo_mid = nil  -- the suspect this call handed out alone
local set_aside = {}  -- suspects this call left for a worker holding nothing

-- suspect_step answers nil to hand mid out (its attempt-th hand-out, the
-- attempt counted already), setting solo_mid when it goes out alone, or
-- the skip step of a suspect buried or set aside, its attempt uncounted.
local function suspect_step(mid, attempt)
  local outcomes = tonumber(redis.call('hget', K_NOUTCOMES, mid)) or 0
  local lost = attempt - 1 - outcomes
  if lost < 1 then return nil end
  local solo_lost, at, at_outcomes, aside = 0, 0, 0, 0
  local rec = redis.call('hget', K_NSOLO, mid)
  if rec then
    local a, b, c, d = string.match(rec, '^(%d+) (%d+) (%d+) ?(%d*)$')
    solo_lost, at, at_outcomes, aside = tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0, tonumber(d) or 0
  end
  if at > 0 and at == attempt - 1 and at_outcomes == outcomes then
    solo_lost = solo_lost + 1
  end
  local charged = solo_lost + math.min(1, math.max(0, lost - solo_lost))
  if charged >= quarantine_after or lost >= 4 * quarantine_after then
    redis.call('hincrby', K_NATTEMPTS, mid, '-1')
    bury(mid, 'quarantined', 'handed out ' .. lost .. ' times without an outcome (' .. solo_lost .. ' alone)',
      attempt - 1, now, default_lock_ms)
    return {'skip', 'quarantined'}
  end
  if held > 0 or #handed > 0 then
    if aside == 0 then aside = now end
    local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or default_lock_ms
    if now - aside < lock_ms then
      redis.call('hset', K_NSOLO, mid, solo_lost .. ' 0 0 ' .. aside)
      redis.call('hincrby', K_NATTEMPTS, mid, '-1')
      set_aside[#set_aside + 1] = mid
      return {'skip', 'suspect'}
    end
  end
  if held >= 0 then
    -- Alone, or (set aside for its lock time) after what the worker
    -- holds: either way the call's last hand-out, and its loss charged.
    solo_mid = mid
    redis.call('hset', K_NSOLO, mid, solo_lost .. ' ' .. attempt .. ' ' .. outcomes .. ' 0')
    return nil
  end
  if solo_lost > 0 or rec then
    redis.call('hset', K_NSOLO, mid, solo_lost .. ' 0 0 0')
  end
  return nil
end

-- limit_stop is set when the queue's own limits refused a hand-out (§19):
-- the time in ms its rate token comes due, or 0 for a slot.
local limit_stop = nil

-- decide takes steps 2 and 3 for mid and answers the step, and whether the
-- mid stays on (or, taken from mids-ready, moves onto) mid-circle: the
-- sentinel, a locked message, and a queued one in backoff unless
-- index_only do, as Carmine's poll keeps them (§4, §11), so that what a
-- Carmine worker or a Carmine enqueue does to them is seen by the next
-- lap; every other mid leaves the lists, indexed in due or windows when
-- its status changes by time.
local function decide(mid, from_circle)
  if (not mid) or mid == END_OF_CIRCLE then
    local ndry_runs = 0
    if not useful then
      ndry_runs = tonumber(redis.call('get', K_NDRY_RUNS)) or 0
    end
    local sleep_ms = tonumber(ARGV[1 + math.min(5, ndry_runs + 1)])
    redis.call('set', K_NDRY_RUNS, ndry_runs + 1)
    useful = false
    return sleep_step(sleep_ms, ndry_runs + 1), mid ~= nil
  end

  -- When no Carmine worker reads the queue (index_only), a mid on the
  -- circle that due holds for a time still to come is left to the index
  -- (§11): it leaves the circle at the cost of one read. (Gathered due
  -- entries are sent first, so that this reads what the call wrote, as a
  -- call of one step would.) Otherwise the status decides, as for every
  -- mid: a Carmine worker's lock or outcome, or a Carmine enqueue's reset
  -- of a backoff, leaves due behind.
  if index_only and from_circle and not collected[mid] then
    if #gathered.due > 0 then
      call_each('zadd', K_DUE, gathered.due)
      gathered.due = {}
    end
    local at = tonumber(redis.call('zscore', K_DUE, mid))
    if at and at > now then
      return {'skip', 'indexed'}, false
    end
  end

  -- One read of messages answers both whether mid is in the queue and,
  -- when it is handed out, its content.
  local content = false
  if not collected[mid] then
    content = redis.call('hget', K_MESSAGES, mid)
  end
  local base, in_backoff, has_backoff, has_lock = message_status(mid, now, content ~= false)
  if base == 'nil' then
    if from_circle then
      return {'skip', 'did-trim'}, false
    end
    return {'skip', 'unexpected'}, false
  elseif base == 'locked' then
    -- A backoff that ended before a Carmine worker handed the message out
    -- stays behind (Carmine's poll leaves it): drop it, so that the counts
    -- (§10) do not read the message as in backoff as well as locked.
    local backoff = tonumber(redis.call('hget', K_BACKOFFS, mid))
    if backoff and backoff <= now then redis.call('hdel', K_BACKOFFS, mid) end
    return {'skip', 'locked'}, true
  elseif in_backoff then
    local backoff = tonumber(redis.call('hget', K_BACKOFFS, mid))
    if base == 'queued' then
      -- A lock that ran out (a Carmine worker's, whose handling ended
      -- without an outcome, and a Carmine enqueue reset the backoff) goes,
      -- as a poll takes back any lock that ran out, so that the counts
      -- (§10) do not read the message as locked.
      if has_lock then redis.call('hdel', K_LOCKS, mid) end
      index_due(mid, backoff)
      return {'skip', 'queued-with-backoff'}, not index_only
    end
    gathered.windows[#gathered.windows + 1] = backoff
    gathered.windows[#gathered.windows + 1] = mid
    return {'skip', 'done-with-backoff'}, false
  end

  useful = true

  if base == 'done' then
    return {'skip', settle_done(mid)}, false
  end

  -- A cancelled message (§20) is never handed out again: one whose
  -- handler died after the cancel, or that a Carmine worker released,
  -- is collected here as cancelled.
  if not ext.lean_call and ext.cancel_asked(mid) then
    redis.call('hdel', K_LOCKS, mid)
    cancel_now(mid)
    return {'skip', 'cancelled'}, false
  end

  -- Limits (§19): the queue's own refuse the rest of the call (limit_stop,
  -- the mid back first in line); a key's slots park mid, on mid-circle
  -- unless index_only, where a Carmine worker finds it; a key's rate
  -- delays it in due alone, which puts it back on mids-ready at its
  -- token (as a lock's expiry does).
  local limits_plan = nil
  if features.limits then -- (features read before the first step)
    local refusal, at
    refusal, at, limits_plan = limits_admit(mid, now)
    if refusal == 'stop' then
      limit_stop = at
      if at > 0 then return {'skip', 'rate-limited'}, from_circle end
      return {'skip', 'limited'}, from_circle
    elseif refusal == 'park' then
      limits_park(mid, limits_plan.key)
      return {'skip', 'parked'}, not index_only
    elseif refusal == 'rate' then
      limits_reserve(mid, limits_plan, at, now)
      index_due(mid, at)
      return {'skip', 'rate-limited'}, false
    end
  end

  -- queued, not in backoff, lock absent or expired: hand it out, unless
  -- it is a suspect that must wait for a worker holding nothing, or must
  -- be buried (suspect_step, below).
  local attempt = redis.call('hincrby', K_NATTEMPTS, mid, '1')
  if attempt > 1 and quarantine_after > 0 then
    local skip = suspect_step(mid, attempt)
    if skip then return skip, false end
  end
  local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or default_lock_ms
  local locked_until = now + lock_ms
  -- The token as text, written to locks and the due index: formatted
  -- once a call for the hand-outs that share it (every one with the
  -- default lock time), where Redis 7.0 would format the number with
  -- %.17g for each write. %d writes what %.17g does for a whole number
  -- of ms below 2^53, and what the reply's integer says.
  local lu = gathered.lu
  if lu[1] ~= locked_until then lu[1], lu[2] = locked_until, string.format('%d', locked_until) end
  redis.call('hset', K_LOCKS, mid, lu[2])
  -- When the message was due: its enqueue, or the end of the backoff it
  -- waited out (read before its expired entry is deleted, or kept by the
  -- wake that deleted it), whichever is later.
  local due_at = woke_due[mid]
  if has_backoff then
    due_at = tonumber(redis.call('hget', K_BACKOFFS, mid))
    redis.call('hdel', K_BACKOFFS, mid)
  end
  index_due(mid, lu[2])
  if limits_plan then limits_take(mid, limits_plan) end
  local udt_s = redis.call('hget', K_UDTS, mid)
  local udt = tonumber(udt_s) or now
  due_at = math.max(udt, due_at or udt)
  local step = {'handle', mid, content, attempt, lock_ms, udt, locked_until, now, metadata_of(mid), due_at}
  -- (features was read before the first step, feature_used('priority'):
  -- a queue without policies or priorities spends no call on them)
  local f = features
  local policy = f.policy and policy_of(mid, udt) or ''
  if policy ~= '' then step[11] = policy end
  if f.priority then
    -- (prio_list's read, without its check of the feature: the entry of
    -- this message, '<udt>:<p>' as enqueue.lua writes it, told by its
    -- tag as written, udts' integer ms, without tagged_get's pattern and
    -- numbers; any other entry by tagged_get)
    local prio = redis.call('hget', K_PRIO, mid)
    if prio then
      local n = udt_s and #udt_s or 0
      if n > 0 and #prio == n + 2 and string.byte(prio, n + 1) == 58 and string.sub(prio, 1, n) == udt_s then
        prio = string.sub(prio, n + 2)
      else
        prio = tagged_get(K_PRIO, mid, udt)
      end
    end
    if prio == 'h' or prio == 'l' then
      step[11] = policy
      step[12] = prio
    end
  end
  return step, false
end

local reply = {0, outcomes}
if max_steps > 0 and redis.call('exists', K_PAUSED) == 1 then
  -- Paused (beyond Carmine, §10): outcomes are recorded, nothing is handed
  -- out, and the worker sleeps its longest end-of-queue sleep, or until
  -- a resume wakes it: it blocks on the resumed list, which enqueues do
  -- not touch and a resume fills for every sleeper. ndry-runs stays as it
  -- is.
  local ndry_runs = tonumber(redis.call('get', K_NDRY_RUNS)) or 0
  reply[3] = {'sleep', tonumber(ARGV[6]), 'resumed', ndry_runs, 0}
  max_steps = 0
end
if max_steps > 0 then
  if feature_used('priority') then hi_empty, lo_empty = false, false end
  wake(math.max(max_steps, 64))
end
for _ = 1, max_steps do
  if #handed >= max_handles then break end
  local mid, from_circle, from_prio = take()
  local answer, stays = decide(mid, from_circle)
  if limit_stop and not from_circle then
    -- (§19) back first in line, on the list it was taken from
    redis.call('rpush', (from_prio == 'h' and K_PRIO_HI) or (from_prio == 'l' and K_PRIO_LO) or K_MIDS_READY, mid)
  end
  -- A mid taken from prio-hi or prio-lo stands on mid-circle already
  -- (§18), unless index_only: a locked one is not pushed there again;
  -- one gone (a Carmine worker's lap handled it, or it was deleted) is
  -- trimmed, as from the circle.
  if from_prio then
    if answer[2] == 'locked' then stays = false end
    if answer[2] == 'unexpected' then answer[2] = 'did-trim' end
  end
  if mid and stays then
    circle_back[#circle_back + 1] = mid
  end
  reply[#reply + 1] = answer
  if limit_stop then
    -- (§19) the longest end-of-queue sleep, ended by due's earliest
    -- entry, the rate token, or a wake (a slot freed)
    local s = sleep_step(tonumber(ARGV[6]), tonumber(redis.call('get', K_NDRY_RUNS)) or 0)
    if limit_stop > 0 and math.max(1, limit_stop - now) < s[2] then
      s[2], s[5] = math.max(1, limit_stop - now), 1
    end
    reply[#reply + 1] = s
    break
  end
  if answer[1] == 'sleep' then break end
  if answer[1] == 'handle' then
    handed[#handed + 1] = answer[2]
    if solo_mid then
      answer[1] = 'solo'
      break
    end
  end
end
if feature_used('limits') and limits_wake and #set_aside == 0 then wake_one() end
if #set_aside > 0 then
  -- (suspect_step) back where they were taken from, first in line
  for i = #set_aside, 1, -1 do
    push_ready('rpush', set_aside[i])
  end
  wake_one()
end
if ext.limits_flush then limits_deferred = false end
flush()
flush_history(now)
if useful then
  redis.call('set', K_NDRY_RUNS, '0')
end

if n_outcomes > 0 or #handed > 0 or consumed or confirmed < seq - 1 then
  local answers = {}
  for i, r in ipairs(outcomes) do
    answers[i] = (r == 'ok') and 'o' or ((r == 'cancelled') and 'c' or 'l')
  end
  local items = {ARGV[11], table.concat(answers), tostring(now), ARGV[1]}
  for _, mid in ipairs(handed) do items[#items + 1] = mid end
  receipt_put(K_POLL_RECEIPTS, K_POLL_RECEIPTS_PREV, poller, pack(items), since, tonumber(ARGV[13]), now)
end

if ARGV[9] == '1' then
  local _, _, _, _, nqueued = queue_counts(POLL_COUNT_DONE_MAX)
  reply[1] = nqueued
else
  reply[1] = -1
end
return reply

-- outcome.lua: recording a handler's outcome (docs/protocol.md §6), fenced on
-- the lock its handling took (§7), and the writes it shares with the poll:
-- collecting a message, requeueing it, and its dead letter (§11). Composed
-- into dequeue.lua, which records outcomes before it polls, and into
-- renew.lua, delete.lua, cancel.lua and limits-set.lua, after history.lua
-- and attempt-errors.lua (§17).

-- UNPACK_MAX bounds the arguments one gathered command takes, well inside
-- what Lua's unpack can spread.
local UNPACK_MAX = 1000

-- call_each runs redis.call(cmd, key, ...) over all of items, in chunks:
-- one command for the common list that fits in one, none for an empty one.
local function call_each(cmd, key, items)
  local n = #items
  if n <= UNPACK_MAX then
    if n > 0 then redis.call(cmd, key, unpack(items)) end
    return
  end
  for i = 1, n, UNPACK_MAX do
    redis.call(cmd, key, unpack(items, i, math.min(i + UNPACK_MAX - 1, #items)))
  end
end

-- index_only is set by a call whose client says no Carmine worker reads
-- the queue (§11): a message waiting out a backoff then waits in due
-- alone. Otherwise it also stands on mid-circle, where Carmine's protocol
-- keeps every live id, so that a Carmine enqueue that resets its backoff
-- (which writes backoffs alone) is seen by the next lap of any worker.
local index_only = false

-- A queue's keys of an extension are read only when its features hash
-- says it uses it: feature_used reads the fields of the extensions the
-- poll and outcomes know (policy, §14; priority, §18; results, §21) once
-- per call, in one HMGET, when first asked.
local features = nil
local function feature_used(name)
  if features == nil then
    local v = redis.call('hmget', K_FEATURES, 'policy', 'priority', 'results', 'handoffs', 'batches',
      'cancel', 'progress', 'limits')
    -- (one constructor: Lua sizes the table once; limits_conf holds the
    -- limits themselves, §19)
    features = {policy = v[1] ~= false, priority = v[2] ~= false, results = v[3] ~= false,
      handoffs = v[4] ~= false, batches = v[5] ~= false, cancel = v[6] ~= false, progress = v[7] ~= false,
      limits = v[8] ~= false, limits_conf = v[8]}
  end
  return features[name] == true
end

-- The outcome code of the extensions with keys of their own lives apart,
-- in outcome-ext.lua (batches §22, results §21, a cancel's check §20),
-- followups.lua (follow-ups, §22) and limits.lua (§19), each composed
-- after this file where it is needed, and reached through one table, ext:
-- ext.tick_batch, ext.notify_final, ext.cancel_asked, ext.keep_result,
-- ext.trim_results (outcome-ext.lua), ext.in_script, ext.hand_off
-- (followups.lua), ext.limits_freed, ext.limits_flush, ext.limits_prefetch
-- (limits.lua). The lean poll's compositions (§4) leave out outcome-ext.lua
-- and limits.lua, and the plain one followups.lua too: Redis makes a
-- closure of every function a script defines, and binds its upvalues, at
-- every call, a cost its busy workers would pay for nothing. There those
-- fields stay nil: code a lean call reaches calls them only when they are
-- there; code it never reaches (behind ext.lean_call, or behind a feature it
-- found unused, or a result, which it refuses) calls them as they are.
-- (One table, not a local each: Lua 5.1 finds each upvalue a closure
-- binds by walking the list of those already bound, so every local that
-- some function uses makes every later closure dearer.)
-- ext.lean_call is set by a lean poll (dequeue.lua, §4) once it checked
-- that the queue uses none of results, handoffs, batches, cancel,
-- progress and (but in dequeue-limits, which has limits.lua) limits, and
-- that no outcome carries a result or
-- follow-ups: the per-message calls of those extensions are skipped then,
-- each a no-op. (Its field is given in the constructor: Lua sizes the
-- table once.)
local ext = {lean_call = false}

-- Per-message policies (§14).
local function policy_used()
  return feature_used('policy')
end

-- Priorities (§18): prio_list answers the list mid's priority puts it
-- on when it is ready, with its priority ('h' or 'l'), or nil for a
-- normal one (mids-ready), reading prio only when the queue ever used
-- priorities. Like a policy, an entry is the message's only when its tag
-- is the message's first-enqueue time udt (read when not given).
local function prio_list(mid, udt)
  if not feature_used('priority') then return nil end
  local p = tagged_get(K_PRIO, mid, udt or redis.call('hget', K_UDTS, mid))
  if p == 'h' then return K_PRIO_HI, p end
  if p == 'l' then return K_PRIO_LO, p end
  return nil
end

-- push_ready puts mid back to be handed out: with cmd 'rpush' first in
-- line, with 'lpush' last, on its priority's list (prio_list) or on
-- mids-ready. A high or low one goes onto mid-circle too (unless
-- index_only), where a Carmine worker finds it: it reads neither
-- prio-hi nor prio-lo.
local function push_ready(cmd, mid)
  local list = prio_list(mid)
  if not list then
    redis.call(cmd, K_MIDS_READY, mid)
    return
  end
  redis.call(cmd, list, mid)
  if not index_only then redis.call('lpush', K_MID_CIRCLE, mid) end
end

-- policy_of answers mid's own policy as the client encoded it, '' for
-- none: without the feature, without an entry, or with an entry whose tag
-- is not the message's first-enqueue time udt (stale: left by a Carmine
-- worker's collection, which does not know the key, or by a requeue that
-- became the message; enqueue.lua, set_policy).
local function policy_of(mid, udt)
  if not feature_used('policy') then return '' end -- (policy_used, one call fewer a hand-out)
  return tagged_get(K_POLICY, mid, udt) or ''
end

-- policy_field answers field n of an encoded policy (EncodePolicy in
-- internal/protocol: fields of a four-byte little-endian length and
-- their bytes), nil when it has fewer: the eighth is the dedupe window in
-- ms, the ninth the batch (outcome-ext.lua).
local function policy_field(p, n)
  local i, k = 1, 0
  while i + 3 <= #p do
    local a, b, c, d = string.byte(p, i, i + 3)
    local len = a + 256 * b + 65536 * c + 16777216 * d
    k = k + 1
    if k == n then return string.sub(p, i + 4, i + 3 + len) end
    i = i + 4 + len
  end
  return nil
end

-- Gathered writes. Within one call, the due entries written (each a
-- score and a mid; lu keeps the last lock token a hand-out wrote and its
-- text, dequeue.lua), the windows written and the messages collected are
-- gathered and sent as one command per key by flush_gathered, which leaves
-- the same state as writing each in turn: a collected mid reads as absent
-- from then on (collected), and nothing writes an absent mid's entries, so
-- the due and windows entries, sent first, are never those of a mid
-- collected later in the call. (Under maxmemory no write of a poll is
-- refused, go_on_when_full, prelude.lua.)
local gathered = {due = {}, windows = {}, unlock = {}, done = {}, collect = {}, lu = {}}
local collected = {}

-- outcomes_wake is set by an outcome that makes a message ready, or due
-- before every other due entry: a retry, a release, a requeue that
-- becomes the message. The script then wakes a sleeping worker (§6), whose
-- sleep would otherwise run on past it.
local outcomes_wake = false

-- index_due writes mid's due entry (§11): when its status next changes
-- by time alone.
local function index_due(mid, at)
  local due = gathered.due
  due[#due + 1] = at
  due[#due + 1] = mid
end

-- collect deletes every entry of mid (§11: collection at completion), its
-- due and window entries included; a pending requeue has been taken
-- before. The mid stays in the lists until a poll meets it there.
-- ext.limits_freed (limits.lua, §19; nil in scripts without it, and in a
-- call on a queue that uses no limits: limits.lua makes the hooks only
-- then, or in limits-set.lua, which records nothing) frees
-- the concurrency slot of a message an outcome ended or a collection
-- took, and refunds the rate token of a released one; it gathers what it
-- writes, which ext.limits_flush sends (flush_gathered), and
-- ext.limits_prefetch reads the slots of a call's outcomes at once
-- (record_outcomes).

local function collect(mid)
  if collected[mid] then return end
  collected[mid] = true
  if ext.limits_freed then ext.limits_freed(mid, 'collect') end
  gathered.collect[#gathered.collect + 1] = mid
end

local function flush_gathered()
  local g = gathered
  if #g.due > 0 then call_each('zadd', K_DUE, g.due) end
  if #g.windows > 0 then call_each('zadd', K_WINDOWS, g.windows) end
  if #g.done > 0 then call_each('sadd', K_DONE, g.done) end
  if #g.unlock > 0 then call_each('hdel', K_LOCKS, g.unlock) end
  local list = g.collect
  if #list > 0 then
    -- (a line a key, not a loop over a table of them: a table is an
    -- allocation a call)
    call_each('hdel', K_MESSAGES, list)
    call_each('hdel', K_LOCK_TIMES, list)
    call_each('hdel', K_LOCK_TIMES_RQ, list)
    call_each('hdel', K_UDTS, list)
    call_each('hdel', K_LOCKS, list)
    call_each('hdel', K_NATTEMPTS, list)
    call_each('hdel', K_LOCK_ALIASES, list)
    call_each('hdel', K_BACKOFFS, list)
    call_each('hdel', K_NOUTCOMES, list)
    call_each('hdel', K_META, list)
    call_each('hdel', K_ATTEMPT_ERRORS, list)
    call_each('hdel', K_NSOLO, list)
    if policy_used() then call_each('hdel', K_POLICY, list) end
    local f = features -- (read by policy_used)
    if f.priority then call_each('hdel', K_PRIO, list) end
    if f.cancel then call_each('hdel', K_CANCELS, list) end
    if f.progress then call_each('hdel', K_PROGRESS, list) end
    call_each('srem', K_DONE, list)
    call_each('zrem', K_DUE, list)
    call_each('zrem', K_WINDOWS, list)
  end
  if ext.limits_flush then ext.limits_flush() end
  -- (a new list only for one written: each table is an allocation, and
  -- a call flushes two or three times)
  if #g.due > 0 then g.due = {} end
  if #g.windows > 0 then g.windows = {} end
  if #g.unlock > 0 then g.unlock = {} end
  if #g.done > 0 then g.done = {} end
  if #g.collect > 0 then g.collect = {} end
end

-- requeue_now turns mid's pending requeue (messages-rq, or the legacy
-- requeue set) into the message itself, queued and first enqueued now, at
-- the back of mids-ready: Carmine's did-requeue (§4), which this library
-- also takes at completion (§11). Its lock, if any, is the caller's to
-- release.
local function requeue_now(mid, now, default_lock_ms)
  -- (the priority, §18, and the limit key, §19, read while udts still
  -- holds the old time)
  local _, p = prio_list(mid)
  local lk = feature_used('limits') and tagged_get(K_LIMIT_KEY, mid, redis.call('hget', K_UDTS, mid))
  local content = redis.call('hget', K_MESSAGES_RQ, mid)
    or redis.call('hget', K_MESSAGES, mid) -- legacy requeue set
  local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES_RQ, mid)) or default_lock_ms
  redis.call('hset', K_MESSAGES, mid, content)
  redis.call('hset', K_UDTS, mid, now)
  if lock_ms > 0 then
    redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
  else -- (a call that only records outcomes may not know the default)
    redis.call('hdel', K_LOCK_TIMES, mid)
  end
  redis.call('hdel', K_MESSAGES_RQ, mid)
  redis.call('hdel', K_LOCK_TIMES_RQ, mid)
  redis.call('hdel', K_NATTEMPTS, mid)
  redis.call('hdel', K_NOUTCOMES, mid)
  redis.call('hdel', K_ATTEMPT_ERRORS, mid)
  redis.call('hdel', K_NSOLO, mid)
  redis.call('srem', K_DONE, mid)
  redis.call('srem', K_REQUEUE, mid)
  -- A requeue keeps the id's priority (§18; an enqueue with CanRequeue
  -- writes the requeue's): its entry gets the new first-enqueue time, and
  -- the id goes onto its list and mid-circle.
  if lk then redis.call('hset', K_LIMIT_KEY, mid, now .. ':' .. lk) end
  if p then
    redis.call('hset', K_PRIO, mid, now .. ':' .. p)
    redis.call('lpush', (p == 'h') and K_PRIO_HI or K_PRIO_LO, mid)
    if not index_only then redis.call('lpush', K_MID_CIRCLE, mid) end
  else
    redis.call('lpush', K_MIDS_READY, mid)
  end
  outcomes_wake = true
end

-- finish ends a message whose current content is done with for good:
-- its pending requeue becomes the message (the lock and index entries of
-- the old one going, the caller releasing its lock), or it is collected.
-- It answers the skip reason of §4 for it.
local function finish(mid, now, default_lock_ms)
  if has_requeue(mid) then
    requeue_now(mid, now, default_lock_ms)
    redis.call('hdel', K_LOCK_ALIASES, mid)
    redis.call('zrem', K_DUE, mid)
    redis.call('zrem', K_WINDOWS, mid)
    return 'did-requeue'
  end
  collect(mid)
  return 'did-gc'
end

-- pack4 stores a list of strings as one string, each after its length in
-- four bytes (a dead letter's content may be longer than pack's three
-- bytes allow).
local function pack4(items)
  local parts = {}
  for _, s in ipairs(items) do
    local n = #s
    parts[#parts + 1] = string.char(n % 256, math.floor(n / 256) % 256,
      math.floor(n / 65536) % 256, math.floor(n / 16777216))
    parts[#parts + 1] = s
  end
  return table.concat(parts)
end

-- Dead letters (§11). The bounds come with every call that may write one.
local dead_max_count, dead_max_age_ms = 0, 0

-- trim_store drops the entries of a store (a hash, with its index by
-- time, a sorted set) older than max_age_ms and the oldest beyond
-- max_count, at most `limit` of each per call, so that a call's work stays
-- bounded (each entry written drops at least one over the bound, so the
-- store never grows past it by more than that). Dead letters use it
-- (at most 100 of each a call), and results (outcome-ext.lua's trim_results).
local function trim_store(store, index, max_age_ms, max_count, limit, now)
  if max_age_ms > 0 then
    local old = redis.call('zrangebyscore', index, '-inf', now - max_age_ms, 'LIMIT', 0, limit)
    if #old > 0 then
      call_each('hdel', store, old)
      call_each('zrem', index, old)
    end
  end
  if max_count > 0 then
    local surplus = redis.call('zcard', index) - max_count
    if surplus > 0 then
      local old = redis.call('zrange', index, 0, math.min(surplus, limit) - 1)
      call_each('hdel', store, old)
      call_each('zrem', index, old)
    end
  end
end

-- Results (§21). The bounds come with every call that may write one.
local results_max_count, results_max_age_ms = 0, 0

-- results_kept counts the results this call wrote (keep_result).
local results_kept = 0

-- enter_window makes mid done, in a dedupe window until at (§6, §14):
-- the backoff set, indexed in windows, the content emptied (it is never
-- handed out again; a pending requeue keeps it, as a legacy requeue mark
-- would requeue this very content). Its lock is the caller's to release.
local function enter_window(mid, at)
  redis.call('hset', K_BACKOFFS, mid, at)
  if not has_requeue(mid) then
    redis.call('hset', K_MESSAGES, mid, '')
  end
  gathered.done[#gathered.done + 1] = mid
  gathered.windows[#gathered.windows + 1] = at
  gathered.windows[#gathered.windows + 1] = mid
  redis.call('zrem', K_DUE, mid)
end

-- bury writes mid's dead letter: {content, reason, error text, attempts,
-- first enqueued ms, died ms, lock time ms or '', its attempts' errors,
-- and the message's own policy when it has one (§14)} (pack4; the
-- attempts' errors are the pack()ed list of attempt-errors.lua, with the
-- last attempt's error added for 'dead'), and collects the message, or,
-- when a requeue is pending, turns that into the message; a message with
-- a dedupe window (window_ms, or its policy's, the longer) enters that
-- window instead, so that a resend of it is refused (§14). reason is
-- 'dead' (an error outcome after the last attempt, or one marked final)
-- or 'quarantined' (handed out too often without an outcome); versions
-- before wrote 'failed' for 'dead'.
local function bury(mid, reason, err, attempts, now, default_lock_ms, window_ms)
  local content = redis.call('hget', K_MESSAGES, mid) or ''
  local udt = redis.call('hget', K_UDTS, mid) or ''
  local lock_ms = redis.call('hget', K_LOCK_TIMES, mid) or ''
  local errors
  if reason == 'dead' then
    errors = with_attempt_error(attempt_errors(mid, attempts), attempts, now, err)
  else
    errors = attempt_errors(mid, attempts + 1)
  end
  local items = {content, reason, err, tostring(attempts), udt, tostring(now), lock_ms, pack(errors)}
  local policy = policy_of(mid, udt)
  if policy ~= '' then items[9] = policy end
  if ext.tick_batch then ext.tick_batch(mid, udt, 'd') end
  redis.call('hset', K_DEAD, mid, pack4(items))
  redis.call('zadd', K_DEAD_INDEX, now, mid)
  count_history('d')
  trim_store(K_DEAD, K_DEAD_INDEX, dead_max_age_ms, dead_max_count, 100, now)
  if ext.notify_final then ext.notify_final(mid) end
  window_ms = math.max(window_ms or 0, tonumber(policy_field(policy, 8)) or 0)
  if window_ms > 0 then
    enter_window(mid, now + window_ms)
    return
  end
  finish(mid, now, default_lock_ms)
end

-- holds_lock tells whether token proves the current lock of mid: it is the
-- lock, or a renewal was presented token and wrote the lock that is there
-- now (lock-aliases), which happens when the renewal's reply was lost.
local function holds_lock(mid, token)
  local held = redis.call('hget', K_LOCKS, mid)
  if not held then return false end
  if tonumber(held) == tonumber(token) then return true end
  local alias = redis.call('hget', K_LOCK_ALIASES, mid)
  if not alias then return false end
  local from, to = string.match(alias, '^(%d+) (%d+)$')
  return tonumber(from) == tonumber(token) and tonumber(to) == tonumber(held)
end

-- cancel_now ends a cancelled message for good: collected with every
-- entry of it, its pending requeue too (a cancel is of the id), never
-- retried and never a dead letter. Its lock is the caller's to release.
local function cancel_now(mid)
  if ext.tick_batch then
    ext.tick_batch(mid, nil, 'c') -- (before collect, which drops the policy)
    ext.notify_final(mid) -- (a waiter for its result learns there is none)
  end
  redis.call('hdel', K_MESSAGES_RQ, mid)
  redis.call('hdel', K_LOCK_TIMES_RQ, mid)
  redis.call('srem', K_REQUEUE, mid)
  collect(mid)
end

-- record_outcome writes one outcome if the token proves the lock of mid
-- and the message is not done, and answers 'ok'; otherwise it writes
-- nothing and answers 'lock-lost'. The outcomes (§6, §11):
--   'success' with no backoff: the message is collected at once, or its
--     pending requeue becomes the message; a result ('' for none) is kept
--     first (keep_result), and waiters are told (notify_final);
--   'success' with a backoff: done, in a dedupe window until the backoff
--     ends (backoffs and windows), its content dropped (it is never
--     handed out again);
--   'retry': unlocked, its outcome counted (noutcomes), queued again:
--     after its backoff (due, and on mid-circle unless index_only) or at
--     the back of mids-ready;
--   'dead': a dead letter with the error text err (bury), in a dedupe
--     window of backoff_ms when that is not 0 (§14);
--   'release' gives back a message a worker took but never started
--     (prefetched, then the worker stopped or it waited too long, or the
--     reply that handed it out was lost): the lock goes, the attempt is
--     uncounted, and the mid goes to the right of mids-ready, the end
--     polls pop next, leaving the message as it was before the poll took
--     it;
--   'cancelled' (§20): the message is collected with its pending requeue
--     (cancel_now), neither retried nor a dead letter. Any outcome of a
--     message whose cancel stands (cancel_asked) is recorded as
--     'cancelled', a release too (it never runs), and answered
--     'cancelled' instead of 'ok'.
-- Locks are released as one gathered HDEL (flush_gathered); unlocked
-- remembers the mids whose lock goes, so that a second outcome for one of
-- them in the same call reads it as lost, as it would once the lock is
-- deleted.
local function record_outcome(mid, token, outcome, backoff_ms, err, now, default_lock_ms, unlocked, result, followups,
    j)
  if unlocked[mid] or collected[mid] then
    return 'lock-lost'
  end
  if (not holds_lock(mid, token)) or redis.call('sismember', K_DONE, mid) == 1 then
    return 'lock-lost'
  end
  unlocked[mid] = true
  -- (a lean call, §4, reads ext.lean_call once: the extensions it skips
  -- are each a no-op for it)
  local full = not ext.lean_call
  if outcome == 'cancelled' or (full and ext.cancel_asked(mid)) then
    count_history('p')
    cancel_now(mid)
    gathered.unlock[#gathered.unlock + 1] = mid
    return 'cancelled'
  end
  -- (ext.limits_freed is there in a lean composition with limits.lua)
  if ext.limits_freed then ext.limits_freed(mid, outcome, now) end
  if outcome == 'success' then -- (before finish, which may rewrite udts)
    -- (a lean call carries no follow-ups for the relay: refused, §4)
    if ext.hand_off then ext.hand_off(followups, j) end
    if full then ext.tick_batch(mid, nil, 's') end
  end
  if outcome ~= 'release' then
    count_history('p')
    if outcome ~= 'success' then count_history('f') end
  end
  if outcome == 'release' then
    redis.call('hdel', K_LOCKS, mid)
    if redis.call('hincrby', K_NATTEMPTS, mid, '-1') <= 0 then
      redis.call('hdel', K_NATTEMPTS, mid)
    end
    redis.call('zrem', K_DUE, mid)
    push_ready('rpush', mid)
    outcomes_wake = true
    return 'ok'
  elseif outcome == 'dead' then
    local attempts = tonumber(redis.call('hget', K_NATTEMPTS, mid)) or 0
    bury(mid, 'dead', err, attempts, now, default_lock_ms, backoff_ms)
    gathered.unlock[#gathered.unlock + 1] = mid
    return 'ok'
  elseif outcome == 'retry' then
    redis.call('hincrby', K_NOUTCOMES, mid, '1')
    note_attempt_error(mid, now, err)
    if backoff_ms > 0 then
      redis.call('hset', K_BACKOFFS, mid, now + backoff_ms)
      index_due(mid, now + backoff_ms)
      if not index_only then
        redis.call('lpush', K_MID_CIRCLE, mid)
      end
      if due_sooner(now + backoff_ms) then outcomes_wake = true end
    else
      redis.call('zrem', K_DUE, mid)
      push_ready('lpush', mid)
      outcomes_wake = true
    end
  else -- success
    if full and result and result ~= '' then ext.keep_result(mid, result, now) end
    if backoff_ms > 0 then -- in a dedupe window
      enter_window(mid, now + backoff_ms)
    else
      finish(mid, now, default_lock_ms)
    end
    if full then ext.notify_final(mid) end
  end
  gathered.unlock[#gathered.unlock + 1] = mid
  return 'ok'
end

-- OUTCOME_ARGS is the number of arguments of one outcome.
local OUTCOME_ARGS = 7

-- OUTCOMES are the outcomes record_outcome knows.
local OUTCOMES = {success = true, retry = true, dead = true, release = true, cancelled = true}

-- check_outcomes answers an error reply (MQOUTCOME) naming the first
-- outcome given in ARGV from index first on (n groups, as record_outcomes
-- takes them) that is not one of OUTCOMES, or whose follow-ups to enqueue
-- here cannot be (in_script.check), or a call whose block does not
-- match its 'B' marks (in_script.check_block), or nil when all are known; and, second,
-- whether any of them carries a result or follow-ups for the relay (what
-- follows the follow-ups enqueued here, the rest in_script.check
-- answers), which a lean call refuses (dequeue.lua, §4). A call checks before it writes
-- anything: Redis does not undo the writes a script made before it failed,
-- and an answer it does not know is refused, never guessed.
local function check_outcomes(first, n)
  local argv, in_script, carries = ARGV, ext.in_script, false
  for i = 0, n - 1 do
    local j = first + OUTCOME_ARGS * i
    if not OUTCOMES[argv[j + 2]] then
      return redis.error_reply('MQOUTCOME unknown outcome "' .. tostring(argv[j + 2]) ..
        '" for message "' .. tostring(argv[j]) .. '"'), carries
    end
    local fu = argv[j + 6]
    if in_script and fu and fu ~= '' then -- (an 'S' record: follow-ups to enqueue here)
      local bad, rest = in_script.check(j + 6, fu)
      if bad then
        return redis.error_reply('MQOUTCOME ' .. bad .. ' for message "' .. tostring(argv[j]) .. '"'), carries
      end
      fu = rest
    end
    if argv[j + 5] ~= '' or fu ~= '' then carries = true end
  end
  if in_script then
    local bad = in_script.check_block()
    if bad then return redis.error_reply('MQOUTCOME ' .. bad), carries end
  end
  return nil, carries
end

-- record_outcomes records the outcomes given in ARGV from index first on,
-- in groups of OUTCOME_ARGS (mid, token, outcome, backoff in ms, error
-- text, the result of a success ('' for none, §21), the follow-ups ('' for
-- none)), n groups, and answers their results in order. The first #known of
-- them were recorded by an earlier call whose reply was lost: known holds
-- their answers, one character each ('o' for 'ok', 'c' for 'cancelled',
-- 'l' for 'lock-lost'),
-- and they are not recorded again. The gathered writes are flushed before
-- it returns.
local function record_outcomes(first, n, now, default_lock_ms, known)
  local results = {}
  local unlocked = {}
  if ext.limits_prefetch and feature_used('limits') then ext.limits_prefetch(first, n, #known) end
  local argv = ARGV -- (a local: each read of the global is a lookup)
  for i = 0, n - 1 do
    if i < #known then
      local k = string.sub(known, i + 1, i + 1)
      if k == 'o' then
        results[i + 1] = 'ok'
      elseif k == 'c' then
        results[i + 1] = 'cancelled'
      else
        results[i + 1] = 'lock-lost'
      end
    else
      local j = first + OUTCOME_ARGS * i
      results[i + 1] = record_outcome(argv[j], argv[j + 1], argv[j + 2], tonumber(argv[j + 3]), argv[j + 4],
        now, default_lock_ms, unlocked, argv[j + 5], argv[j + 6], j + 6)
    end
  end
  if ext.in_script and ext.in_script.flush(now, results, #known) then outcomes_wake = true end
  flush_gathered()
  if results_kept > 0 then ext.trim_results(now) end
  return results
end

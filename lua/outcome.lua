-- outcome.lua: recording a handler's outcome (docs/protocol.md §6), fenced on
-- the lock its handling took (§7), and the writes it shares with the poll:
-- collecting a message, requeueing it, and its dead letter (§11). Composed
-- into dequeue.lua, which records outcomes before it polls, and into
-- renew.lua and dead-letters.lua, after history.lua and
-- attempt-errors.lua (§17).

-- UNPACK_MAX bounds the arguments one gathered command takes, well inside
-- what Lua's unpack can spread.
local UNPACK_MAX = 1000

-- call_each runs redis.call(cmd, key, ...) over all of items, in chunks.
local function call_each(cmd, key, items)
  for i = 1, #items, UNPACK_MAX do
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
    features = {policy = v[1] ~= false, priority = v[2] ~= false, results = v[3] ~= false}
    features.handoffs, features.batches = v[4] ~= false, v[5] ~= false
    features.cancel, features.progress = v[6] ~= false, v[7] ~= false
    features.limits = v[8] ~= false
  end
  return features[name] == true
end

-- lean_call is set by a lean poll (dequeue.lua, §4) once it checked that
-- the queue uses none of results, handoffs, batches, cancel, progress and
-- limits, and that no outcome carries a result or follow-ups: the
-- per-message calls of those extensions are skipped then, each a no-op.
local lean_call = false

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
  if not policy_used() then return '' end
  return tagged_get(K_POLICY, mid, udt) or ''
end

-- window_of answers the dedupe window in ms of an encoded policy (its
-- eighth field, EncodePolicy in internal/protocol), 0 for none.
local function window_of(p)
  local i, n = 1, 0
  while i + 3 <= #p do
    local a, b, c, d = string.byte(p, i, i + 3)
    local len = a + 256 * b + 65536 * c + 16777216 * d
    n = n + 1
    if n == 8 then return tonumber(string.sub(p, i + 4, i + 3 + len)) or 0 end
    i = i + 4 + len
  end
  return 0
end

-- Follow-ups and batches (§22). batch_of answers the batch an encoded
-- policy names (its ninth field, "<b>\n<completion queue>"), '' for none.
local function batch_of(p)
  local i, n = 1, 0
  while i + 3 <= #p do
    local a, b, c, d = string.byte(p, i, i + 3)
    local len = a + 256 * b + 65536 * c + 16777216 * d
    n = n + 1
    if n == 9 then return string.sub(p, i + 4, i + 3 + len) end
    i = i + 4 + len
  end
  return ''
end

-- tick_batch appends to handoffs the tick of mid's final outcome (kind 's'
-- success, 'd' dead, 'c' cancelled, §20) when mid is a member of a batch: "T<kind>\n<first
-- enqueue time>\n<batch>\n<completion queue>\n<mid>", which the relay
-- counts in the completion queue's batches (batch-tick.lua), once per
-- message (the tick's id is the mid and its first-enqueue time udt, read
-- when not given).
local function tick_batch(mid, udt, kind)
  if not feature_used('batches') then return end
  udt = udt or redis.call('hget', K_UDTS, mid) or ''
  local b = batch_of(policy_of(mid, udt))
  if b == '' then return end
  redis.call('rpush', K_HANDOFFS, 'T' .. kind .. '\n' .. udt .. '\n' .. b .. '\n' .. mid)
end

-- Gathered writes. Within one call, the due entries written (each a
-- score and a mid), the windows written and the messages collected are
-- gathered and sent as one command per key by flush_gathered, which leaves
-- the same state as writing each in turn: a collected mid reads as absent
-- from then on (collected), and nothing writes an absent mid's entries, so
-- the due and windows entries, sent first, are never those of a mid
-- collected later in the call. (Under maxmemory no write of a poll is
-- refused, go_on_when_full, prelude.lua.)
local gathered = {due = {}, windows = {}, unlock = {}, done = {}, collect = {}}
local collected = {}

-- outcomes_wake is set by an outcome that makes a message ready, or due
-- before every other due entry: a retry, a release, a requeue that
-- becomes the message. The script then wakes a sleeping worker (§6), whose
-- sleep would otherwise run on past it.
local outcomes_wake = false

-- Follow-ups enqueued by the script itself (§22, "In the script"). A
-- success's follow-ups record that starts with 'S' holds, each after its
-- length in four little-endian bytes: the number of follow-ups to enqueue
-- here, then per follow-up its target (the target queue's messages key,
-- '' for this queue), id, content, lock time in ms ('0' for the worker's)
-- and metadata ('' for none); what follows them is a record for the relay
-- ('' for none), appended to handoffs as before. A target queue's keys
-- come after the queue's own, eight each (messages, udts, mids-ready,
-- mid-circle, isleep-a, isleep-b, lock-times, meta), the first at KEYS
-- index in_script.first (dequeue.lua's ARGV[22+7n]; 0 for none).
-- in_script.parsed holds, by the ARGV index of a group's follow-ups, what
-- in_script.check parsed; in_script.targets the keys of each target
-- queue, by name; in_script.gathered the follow-ups recorded successes
-- hand off, by target, in the order of in_script.order, enqueued by
-- in_script.flush; in_script.struct is Redis's struct library, nil where
-- the server lacks it.
local in_script = {first = 0, parsed = {}, targets = {}, gathered = {}, order = {}, struct = rawget(_G, 'struct')}

-- in_script.keys answers the keys of the queue whose messages key is name
-- ('' or K_MESSAGES: this queue), or nil when the call did not pass them.
function in_script.keys(name)
  if name == '' then name = K_MESSAGES end
  local ks = in_script.targets[name]
  if ks then return ks end
  if name == K_MESSAGES then
    ks = {K_MESSAGES, K_UDTS, K_MIDS_READY, K_MID_CIRCLE, K_ISLEEP_A, K_ISLEEP_B, K_LOCK_TIMES, K_META}
  elseif in_script.first > 0 then
    for g = in_script.first, #KEYS - 7, 8 do
      if KEYS[g] == name then
        ks = {KEYS[g], KEYS[g + 1], KEYS[g + 2], KEYS[g + 3], KEYS[g + 4], KEYS[g + 5], KEYS[g + 6], KEYS[g + 7]}
        break
      end
    end
  end
  in_script.targets[name] = ks
  return ks
end

-- in_script.field_at answers the field at position i of s (its length in four
-- little-endian bytes, then its bytes) and the position after it, or nil
-- when s is too short.
function in_script.field_at(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  if not d then return nil end
  local len = a + 256 * b + 65536 * c + 16777216 * d
  if i + 3 + len > #s then return nil end
  return string.sub(s, i + 4, i + 3 + len), i + 4 + len
end

-- in_script.fields answers the five fields of the follow-up at position i
-- of rec (target, id, content, lock time, metadata) and the position after
-- them, or nil when rec is too short. Where Redis has its struct library
-- (in_script.struct), one struct.unpack reads them ('c0' takes the length
-- read before it): reading them field by field in Lua was most of what a
-- follow-up cost the script. Elsewhere (an embedded server) it is done
-- field by field.
function in_script.fields(rec, i)
  if in_script.struct then
    local ok, target, id, data, lock, meta, after = pcall(in_script.struct.unpack, '<I4c0I4c0I4c0I4c0I4c0', rec, i)
    if ok then return target, id, data, lock, meta, after end
    return nil
  end
  local f = {}
  for x = 1, 5 do
    f[x], i = in_script.field_at(rec, i)
    if not f[x] then return nil end
  end
  return f[1], f[2], f[3], f[4], f[5], i
end

-- in_script.check parses the 'S' record rec of the outcome group at ARGV
-- index j into in_script.parsed[j] (its follow-ups in order, each {keys,
-- id, content, lock time, metadata}, and rest, the record for the relay),
-- and answers nil, or an error text when the record is damaged or names a
-- queue whose keys the call lacks: the call is then refused before
-- anything is written.
function in_script.check(j, rec)
  local n, i = in_script.field_at(rec, 2)
  n = tonumber(n)
  if not n then return 'a damaged follow-ups record' end
  local p = {}
  for k = 1, n do
    local target, id, data, lock, meta
    target, id, data, lock, meta, i = in_script.fields(rec, i)
    if not target then return 'a damaged follow-ups record' end
    local ks = in_script.keys(target)
    if not ks then return 'no keys for the follow-ups to ' .. target end
    p[k] = {ks, id, data, lock, meta}
  end
  p.rest = string.sub(rec, i)
  in_script.parsed[j] = p
  return nil
end

-- in_script.flush enqueues the follow-ups gathered, a few commands per
-- target queue, each as an enqueue of a new id would (enqueue.lua's add,
-- §3): its content, first-enqueue time now, metadata and lock time when it
-- has them, at the left of mids-ready in order (and mid-circle's sentinel
-- when the circle is missing), and a sleeping worker of its queue woken,
-- once per queue and call (move_sentinel, lib.lua; this queue's through
-- outcomes_wake). An id its queue holds already is this handling's
-- follow-up there already (its id is derived from the handling, unique to
-- it): nothing is written for it. No stale metadata can wait under such
-- an id (§13), so none is deleted.
function in_script.flush(now)
  for _, ks in ipairs(in_script.order) do
    local fs = in_script.gathered[ks[1]]
    local new = {}
    if #fs == 1 then
      if redis.call('hsetnx', ks[1], fs[1][2], fs[1][3]) == 1 then new[1] = fs[1] end
    else
      local seen, contents = {}, {}
      for c = 1, #fs, UNPACK_MAX do
        local ids = {}
        for k = c, math.min(c + UNPACK_MAX - 1, #fs) do ids[#ids + 1] = fs[k][2] end
        for k, held in ipairs(redis.call('hmget', ks[1], unpack(ids))) do
          local f = fs[c + k - 1]
          if not held and not seen[f[2]] then
            seen[f[2]] = true
            new[#new + 1] = f
            contents[#contents + 1], contents[#contents + 2] = f[2], f[3]
          end
        end
      end
      call_each('hset', ks[1], contents)
    end
    if #new > 0 then
      local ids, udts, locks, metas = {}, {}, {}, {}
      local at = tostring(now) -- (once: Redis formats a number argument each time)
      for k, f in ipairs(new) do
        ids[k] = f[2]
        udts[#udts + 1], udts[#udts + 2] = f[2], at
        if f[4] ~= '0' then locks[#locks + 1], locks[#locks + 2] = f[2], f[4] end
        if f[5] ~= '' then metas[#metas + 1], metas[#metas + 2] = f[2], f[5] end
      end
      call_each('hset', ks[2], udts)
      call_each('hset', ks[7], locks)
      call_each('hset', ks[8], metas)
      local len = 0
      for c = 1, #ids, UNPACK_MAX do
        len = redis.call('lpush', ks[3], unpack(ids, c, math.min(c + UNPACK_MAX - 1, #ids)))
      end
      if len == #ids and redis.call('exists', ks[4]) == 0 then
        redis.call('lpush', ks[4], END_OF_CIRCLE)
      end
      if ks[1] == K_MESSAGES then
        outcomes_wake = true
      else
        move_sentinel(ks[5], ks[6], len % 2 == 1)
      end
    end
  end
  in_script.gathered, in_script.order = {}, {}
end

-- hand_off records a success's follow-ups (§22): those the client sent to
-- enqueue here (an 'S' record, parsed as j's by in_script.check) are
-- gathered for in_script.flush; a record for the relay is appended to
-- handoffs.
local function hand_off(followups, j)
  if followups == nil or followups == '' then return end
  local p = j and in_script.parsed[j]
  if p then
    for _, f in ipairs(p) do
      local ks = f[1]
      local fs = in_script.gathered[ks[1]]
      if not fs then
        fs = {}
        in_script.gathered[ks[1]] = fs
        in_script.order[#in_script.order + 1] = ks
      end
      fs[#fs + 1] = f
    end
    followups = p.rest
    if followups == '' then return end
  end
  redis.call('rpush', K_HANDOFFS, followups)
  if not feature_used('handoffs') then
    redis.call('hset', K_FEATURES, 'handoffs', '1')
    features.handoffs = true
  end
end

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
-- limits_freed (limits.lua, §19; nil in scripts without it) frees the
-- concurrency slot of a message an outcome ended or a collection took,
-- and refunds the rate token of a released one; it gathers what it
-- writes, which limits_flush sends (flush_gathered), and limits_prefetch
-- reads the slots of a call's outcomes at once (record_outcomes).
local limits_freed, limits_flush, limits_prefetch = nil, nil, nil

local function collect(mid)
  if collected[mid] then return end
  collected[mid] = true
  if limits_freed and feature_used('limits') then limits_freed(mid, 'collect') end
  gathered.collect[#gathered.collect + 1] = mid
end

local function flush_gathered()
  if #gathered.due > 0 then
    call_each('zadd', K_DUE, gathered.due)
  end
  if #gathered.windows > 0 then
    call_each('zadd', K_WINDOWS, gathered.windows)
  end
  call_each('sadd', K_DONE, gathered.done)
  call_each('hdel', K_LOCKS, gathered.unlock)
  local list = gathered.collect
  if #list > 0 then
    for _, key in ipairs({K_MESSAGES, K_LOCK_TIMES, K_LOCK_TIMES_RQ, K_UDTS, K_LOCKS, K_NATTEMPTS,
        K_LOCK_ALIASES, K_BACKOFFS, K_NOUTCOMES, K_META, K_ATTEMPT_ERRORS, K_NSOLO}) do
      call_each('hdel', key, list)
    end
    if policy_used() then call_each('hdel', K_POLICY, list) end
    if feature_used('priority') then call_each('hdel', K_PRIO, list) end
    if feature_used('cancel') then call_each('hdel', K_CANCELS, list) end
    if feature_used('progress') then call_each('hdel', K_PROGRESS, list) end
    call_each('srem', K_DONE, list)
    call_each('zrem', K_DUE, list)
    call_each('zrem', K_WINDOWS, list)
  end
  if limits_flush and feature_used('limits') then limits_flush() end
  gathered = {due = {}, windows = {}, unlock = {}, done = {}, collect = {}}
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

-- trim_dead drops the dead letters older than dead_max_age_ms and the
-- oldest beyond dead_max_count, at most 100 of each per call, so that a
-- call's work stays bounded (each dead letter written drops at least one
-- over the bound, so the store never grows past it by more than that).
local function trim_dead(now)
  if dead_max_age_ms > 0 then
    local old = redis.call('zrangebyscore', K_DEAD_INDEX, '-inf', now - dead_max_age_ms, 'LIMIT', 0, 100)
    if #old > 0 then
      call_each('hdel', K_DEAD, old)
      call_each('zrem', K_DEAD_INDEX, old)
    end
  end
  if dead_max_count > 0 then
    local surplus = redis.call('zcard', K_DEAD_INDEX) - dead_max_count
    if surplus > 0 then
      local old = redis.call('zrange', K_DEAD_INDEX, 0, math.min(surplus, 100) - 1)
      call_each('hdel', K_DEAD, old)
      call_each('zrem', K_DEAD_INDEX, old)
    end
  end
end

-- Results (§21). The bounds come with every call that may write one.
local results_max_count, results_max_age_ms = 0, 0

-- results_kept counts the results this call wrote (keep_result).
local results_kept = 0

-- trim_results drops the results older than results_max_age_ms and the
-- oldest beyond results_max_count, at most 100 of each more than this
-- call wrote, as trim_dead does for dead letters: once per call, after
-- its outcomes (record_outcomes), so that the store never grows past its
-- bound by more than 100.
local function trim_results(now)
  local limit = 100 + results_kept
  if results_max_age_ms > 0 then
    local old = redis.call('zrangebyscore', K_RESULTS_INDEX, '-inf', now - results_max_age_ms, 'LIMIT', 0, limit)
    if #old > 0 then
      call_each('hdel', K_RESULTS, old)
      call_each('zrem', K_RESULTS_INDEX, old)
    end
  end
  if results_max_count > 0 then
    local surplus = redis.call('zcard', K_RESULTS_INDEX) - results_max_count
    if surplus > 0 then
      local old = redis.call('zrange', K_RESULTS_INDEX, 0, math.min(surplus, limit) - 1)
      call_each('hdel', K_RESULTS, old)
      call_each('zrem', K_RESULTS_INDEX, old)
    end
  end
end

-- keep_result writes result, the bytes a handler gave with mid's success,
-- as results[mid] = "<now>:<result>", indexed by now in results-index, and
-- marks the queue as using results (features), so that from this call on
-- its final outcomes are published (notify_final). The call trims the
-- results once, after its outcomes (trim_results).
local function keep_result(mid, result, now)
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
local function notify_final(mid)
  if feature_used('results') then
    redis.pcall('publish', K_RESULTS, mid)
  end
end

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
  tick_batch(mid, udt, 'd')
  redis.call('hset', K_DEAD, mid, pack4(items))
  redis.call('zadd', K_DEAD_INDEX, now, mid)
  count_history('d')
  trim_dead(now)
  notify_final(mid)
  window_ms = math.max(window_ms or 0, window_of(policy))
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

-- Cancel (§20). cancel_asked tells whether a cancel of mid stands: the
-- queue uses the feature, and cancels holds an entry tagged with the
-- message's first-enqueue time (an entry of an earlier message of the
-- same id, left by a Carmine worker's collection, is stale).
local function cancel_asked(mid, udt)
  if not feature_used('cancel') then return false end
  return tagged_get(K_CANCELS, mid, udt or redis.call('hget', K_UDTS, mid)) ~= false
end

-- cancel_now ends a cancelled message for good: collected with every
-- entry of it, its pending requeue too (a cancel is of the id), never
-- retried and never a dead letter. Its lock is the caller's to release.
local function cancel_now(mid)
  tick_batch(mid, nil, 'c') -- (before collect, which drops the policy)
  notify_final(mid) -- (a waiter for its result learns there is none)
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
  if outcome == 'cancelled' or (not lean_call and cancel_asked(mid)) then
    count_history('p')
    cancel_now(mid)
    gathered.unlock[#gathered.unlock + 1] = mid
    return 'cancelled'
  end
  if limits_freed and feature_used('limits') then limits_freed(mid, outcome, now) end
  if outcome == 'success' then -- (before finish, which may rewrite udts)
    -- (a lean call carries no follow-ups for the relay: refused, §4)
    hand_off(followups, j)
    if not lean_call then tick_batch(mid, nil, 's') end
  end
  if outcome ~= 'release' then
    count_history('p')
    if outcome ~= 'success' then count_history('f') end
  end
  if outcome == 'release' then
    redis.call('hdel', K_LOCKS, mid)
    if redis.call('hincrby', K_NATTEMPTS, mid, -1) <= 0 then
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
    redis.call('hincrby', K_NOUTCOMES, mid, 1)
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
    if result and result ~= '' then keep_result(mid, result, now) end
    if backoff_ms > 0 then -- in a dedupe window
      enter_window(mid, now + backoff_ms)
    else
      finish(mid, now, default_lock_ms)
    end
    if not lean_call then notify_final(mid) end
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
-- here cannot be (in_script.check), or nil when all are known. A call
-- checks before it writes anything: Redis does not undo the writes a
-- script made before it failed, and an answer it does not know is refused,
-- never guessed.
local function check_outcomes(first, n)
  for i = 0, n - 1 do
    local j = first + OUTCOME_ARGS * i
    if not OUTCOMES[ARGV[j + 2]] then
      return redis.error_reply('MQOUTCOME unknown outcome "' .. tostring(ARGV[j + 2]) ..
        '" for message "' .. tostring(ARGV[j]) .. '"')
    end
    local fu = ARGV[j + 6]
    if fu and string.byte(fu, 1) == 83 then -- 'S': follow-ups to enqueue here
      local bad = in_script.check(j + 6, fu)
      if bad then
        return redis.error_reply('MQOUTCOME ' .. bad .. ' for message "' .. tostring(ARGV[j]) .. '"')
      end
    end
  end
  return nil
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
  if limits_prefetch and feature_used('limits') then limits_prefetch(first, n, #known) end
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
      results[i + 1] = record_outcome(ARGV[j], ARGV[j + 1], ARGV[j + 2], tonumber(ARGV[j + 3]), ARGV[j + 4],
        now, default_lock_ms, unlocked, ARGV[j + 5], ARGV[j + 6], j + 6)
    end
  end
  in_script.flush(now)
  flush_gathered()
  if results_kept > 0 then trim_results(now) end
  return results
end

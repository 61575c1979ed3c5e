-- followups.lua: a success's follow-ups (§22), enqueued in the script or
-- appended to handoffs for the relay, composed after outcome.lua into the
-- poll's compositions but the plain lean one (§4): a lean call without
-- follow-ups to enqueue here needs none of it. in_script and hand_off are
-- outcome.lua's names (nil without this file), set here.

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
--
-- The block (§22, "The block"): the usual follow-up (no lock time, no
-- metadata, no part for the relay) travels as two arguments of the call,
-- its id and its content, in the block after the call's other arguments
-- (from ARGV index in_script.base, dequeue.lua's 23+7n), and its
-- success's field is a mark: 'B', then the group number of each of its
-- follow-ups' targets (0 for this queue, g for the g-th queue whose keys
-- follow the queue's own), comma-separated. The block holds the
-- follow-ups of group 0 first, then of group 1, and so on, each group's
-- in the order of the outcomes and of their marks, so that a target's
-- contents are HSET's arguments as they stand in ARGV: the usual call
-- writes them with no string made and no table filled for them.
-- in_script.bmarks holds each mark parsed (its group numbers), by its
-- text; bcounts and brecorded, by group, how many follow-ups the block holds
-- and how many of them hand_off found their success recorded; btotal how
-- many it holds in all.
--
-- in_script.check gathers the follow-ups of every 'S' record of a call,
-- by target, as it parses them (before anything is written): one table
-- per target, in_script.gathered[its messages key], in the order of
-- in_script.order, holds n (how many), ids (1..n), pairs (id, content,
-- id, content, ...: HSET's arguments as they are), js (the ARGV index of
-- each one's outcome group) and, only when some follow-up has them, locks
-- and metas (by its number). in_script.recs holds, by that ARGV index,
-- the record's rest (for the relay, '' for none) once checked, and true
-- once hand_off found its success recorded: in_script.flush enqueues only
-- those. in_script.targets holds the keys of each target queue, by name,
-- and in_script.last_target and last_g the target of the follow-up
-- gathered last and its table (false before the first); in_script.struct
-- is Redis's struct library, nil where the server lacks it.
--
-- (What Redis pays for this file at every call it is composed into is
-- mostly its closures binding their upvalues: Lua 5.1 finds each one by
-- walking the list of the upvalues bound before it, some hundred here,
-- a few hundred instructions for each. So the functions below name one
-- local, in_script, bound last; what they need of the parts before it is
-- copied into in_script by the main chunk, which reads its locals
-- directly. And every table is filled in ascending order, one assignment
-- each: Lua 5.1 assigns a multiple assignment's targets from the last,
-- so that an element past the array's end goes to the hash part and
-- rebuilds the table.)
local in_script = {first = 0, recs = {}, gathered = {}, order = {}, struct = rawget(_G, 'struct'),
  last_target = false, last_g = false, base = 0, btotal = 0, bmarks = {}, bcounts = {}, brecorded = {},
  own = {K_MESSAGES, K_UDTS, K_MIDS_READY, K_MID_CIRCLE, K_ISLEEP_A, K_ISLEEP_B, K_LOCK_TIMES, K_META},
  call_each = call_each, move_sentinel = move_sentinel,
  UNPACK_MAX = UNPACK_MAX, WAKE_BACKLOG = WAKE_BACKLOG, END_OF_CIRCLE = END_OF_CIRCLE}
in_script.targets = {[K_MESSAGES] = in_script.own}
ext.in_script = in_script

-- in_script.keys answers the keys of the queue whose messages key is name
-- ('' or K_MESSAGES: this queue), or nil when the call did not pass them.
function in_script.keys(name)
  if name == '' then return in_script.own end
  local ks = in_script.targets[name]
  if ks then return ks end
  if in_script.first > 0 then
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

-- in_script.groups answers how many target queues' keys the call passed
-- (eight each, from KEYS index in_script.first).
function in_script.groups()
  if in_script.first == 0 then return 0 end
  return math.floor((#KEYS - in_script.first + 1) / 8)
end

-- in_script.group_keys answers the keys of the gi-th target queue (gi
-- from 1 to in_script.groups()).
function in_script.group_keys(gi)
  local g = in_script.first + 8 * (gi - 1)
  return in_script.keys(KEYS[g])
end

-- in_script.mark parses the mark rec (not in in_script.bmarks) into its
-- group numbers, keeps them in in_script.bmarks, and answers them, or
-- nil and an error text when a number is not one of the call's groups.
function in_script.mark(rec)
  local bm, groups = {}, in_script.groups()
  for d in string.gmatch(rec, '%d+') do
    local gi = tonumber(d)
    if gi > groups then return nil, 'a damaged follow-ups mark' end
    bm[#bm + 1] = gi
  end
  -- (only the text the client writes: 'B', numbers without leading
  -- zeros, commas between them)
  if #bm == 0 or 'B' .. table.concat(bm, ',') ~= rec then return nil, 'a damaged follow-ups mark' end
  in_script.bmarks[rec] = bm
  return bm
end

-- in_script.check_block answers an error text when the call's block does
-- not hold exactly the follow-ups its marks name, or when the call has
-- both marks and 'S' records to enqueue here (a client sends one or the
-- other), else nil.
function in_script.check_block()
  local total = in_script.btotal
  if total == 0 then return nil end
  if #in_script.order > 0 then return 'follow-ups both in records and in the block' end
  if #ARGV ~= in_script.base - 1 + 2 * total then return 'a damaged follow-ups block' end
  return nil
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

-- in_script.check parses the follow-ups record rec (not '') of the
-- outcome group at ARGV index j and, when it is an 'S' record, gathers
-- its follow-ups (in_script.gathered); a mark ('B') it counts by group.
-- It answers nil and the record's rest, the record for the relay (rec
-- itself when it is of another kind, '' for a mark), or an error text
-- when the record or mark is damaged or names a queue whose keys the
-- call lacks: the call is then refused before anything is written.
function in_script.check(j, rec)
  local bm = in_script.bmarks[rec]
  -- (a mark the call has not shown yet is told by its first byte, read
  -- before the unpack below: a record pays that read, but a mark would
  -- otherwise pay the unpack failing under pcall, ~8k instructions a call
  -- against ~0.7k a record, and marks are what a worker usually sends)
  if not bm and string.byte(rec, 1) == 66 then -- ('B': follow-ups in the block)
    local bad
    bm, bad = in_script.mark(rec)
    if not bm then return bad end
  end
  if bm then
    local counts = in_script.bcounts
    for x = 1, #bm do
      local gi = bm[x]
      counts[gi] = (counts[gi] or 0) + 1
    end
    in_script.btotal = in_script.btotal + #bm
    return nil, ''
  end
  local n, i, target, id, data, lock, meta
  if in_script.struct then
    -- A record of one follow-up: its kind, its count and its five fields
    -- are read by one unpack. (A record of another count may unpack too,
    -- its fields misread: they are then read again below.)
    local ok, kind, c, t, d1, d2, l, m, after =
      pcall(in_script.struct.unpack, '<c1I4c0I4c0I4c0I4c0I4c0I4c0', rec, 1)
    if ok and kind == 'S' and c == '1' then
      n, i, target, id, data, lock, meta = 1, after, t, d1, d2, l, m
    end
  end
  if not n then
    if string.byte(rec, 1) ~= 83 then return nil, rec end -- (not 'S': for the relay)
    n, i = in_script.field_at(rec, 2)
    n = tonumber(n)
    if not n then return 'a damaged follow-ups record' end
  end
  for k = 1, n do
    if k > 1 or not target then -- (the one unpack above read the first)
      target, id, data, lock, meta, i = in_script.fields(rec, i)
      if not target then return 'a damaged follow-ups record' end
    end
    local g = in_script.last_g -- (the usual call's follow-ups all go to one queue)
    if target ~= in_script.last_target then
      local ks = in_script.keys(target)
      if not ks then return 'no keys for the follow-ups to ' .. target end
      g = in_script.gathered[ks[1]]
      if not g then
        g = {n = 0, ids = {}, pairs = {}, js = {}}
        in_script.gathered[ks[1]] = g
        in_script.order[#in_script.order + 1] = ks
      end
      in_script.last_target, in_script.last_g = target, g
    end
    local c = g.n + 1
    g.n = c
    g.ids[c] = id
    g.pairs[2 * c - 1] = id
    g.pairs[2 * c] = data
    g.js[c] = j
    if lock ~= '0' then
      g.locks = g.locks or {}
      g.locks[c] = lock
    end
    if meta ~= '' then
      g.metas = g.metas or {}
      g.metas[c] = meta
    end
  end
  local rest = ''
  if i <= #rec then rest = string.sub(rec, i) end
  in_script.recs[j] = rest
  return nil, rest
end

-- in_script.flush enqueues the follow-ups gathered, then those of the
-- block (results and known, record_outcomes' answers and how many of them
-- the receipt gave, tell block_part which successes were recorded when not
-- all were), a few commands per target queue (in_script.write), each as an
-- enqueue of a new id would (enqueue.lua's add, §3): its content,
-- first-enqueue time now, metadata and lock time when it has them, at the
-- left of mids-ready in order (and mid-circle's sentinel when the circle
-- is missing), and a sleeping worker of its queue woken, once per queue
-- and call (move_sentinel, lib.lua), unless its mids-ready held
-- WAKE_BACKLOG ids a follow-up pushed before (wake-backlog.lua; §5, "No
-- wake past a backlog": the push answers the length). It answers true when
-- this queue's own sleeper is to be woken (outcome.lua sets
-- outcomes_wake). An id its queue holds already is this handling's
-- follow-up there already, or one of an id the client was given: nothing
-- is written for it, nor for an id a follow-up before it in the call took.
-- No stale metadata can wait under such an id (§13), so none is deleted.
-- Follow-ups gathered whose success was not recorded (lock-lost, or
-- recorded by an earlier call whose reply was lost) are skipped.
function in_script.flush(now, results, known)
  local order = in_script.order
  if #order == 0 and in_script.btotal == 0 then return false end
  local at = tostring(now) -- (formatted once: Redis formats a number argument each time)
  local recs, wake_own = in_script.recs, false
  for _, ks in ipairs(order) do
    local g = in_script.gathered[ks[1]]
    local all = true -- (every one's success recorded)
    for k = 1, g.n do
      if recs[g.js[k]] ~= true then all = false; break end
    end
    if in_script.write(ks, g, all, at) then wake_own = true end
  end
  if in_script.btotal > 0 then
    local argv, pos, counts, recorded = ARGV, in_script.base, in_script.bcounts, in_script.brecorded
    for gi = 0, in_script.groups() do
      local c = counts[gi]
      if c then
        local ks = gi == 0 and in_script.own or in_script.group_keys(gi)
        local g
        if recorded[gi] == c then -- (the usual call)
          -- (each table made at its size by a constructor, its elements
          -- then replaced: filled one by one, it would be rebuilt at each
          -- power of two)
          local ids, upairs
          if 2 * c <= in_script.UNPACK_MAX then
            ids, upairs = {unpack(argv, pos, pos + c - 1)}, {unpack(argv, pos, pos + 2 * c - 1)}
            for k = 1, c do
              ids[k] = upairs[2 * k - 1]
              upairs[2 * k] = at
            end
          else
            ids, upairs = {}, {}
            for k = 1, c do
              local id = argv[pos + 2 * k - 2]
              ids[k] = id
              upairs[2 * k - 1] = id
              upairs[2 * k] = at
            end
          end
          g = {n = c, ids = ids, from = pos, upairs = upairs}
        elseif recorded[gi] then
          g = in_script.block_part(gi, pos, results, known)
        end
        if g and in_script.write(ks, g, true, at) then wake_own = true end
        pos = pos + 2 * c
      end
    end
  end
  in_script.gathered, in_script.order, in_script.last_target, in_script.last_g = {}, {}, false, false
  in_script.btotal, in_script.bcounts, in_script.brecorded = 0, {}, {}
  return wake_own
end

-- in_script.block_part answers, as in_script.write takes them, the
-- follow-ups of the block's group gi (its part of the block from ARGV
-- index from on) whose success hand_off found recorded: not every one's
-- was (lock-lost, cancelled, or recorded by an earlier call whose reply
-- was lost). Those are the successes answered 'ok' (results, by outcome)
-- past the first known, which the receipt answered (record_outcomes).
-- The outcomes' groups start at ARGV index 19, seven arguments each, the
-- outcome third and the field seventh.
function in_script.block_part(gi, from, results, known)
  local argv, bmarks = ARGV, in_script.bmarks
  local ids, pairs, n, pos = {}, {}, 0, from
  for i = 0, (in_script.base - 23) / 7 - 1 do
    local j = 25 + 7 * i
    local bm = bmarks[argv[j]]
    if bm then
      for x = 1, #bm do
        if bm[x] == gi then
          if i >= known and argv[j - 4] == 'success' and results[i + 1] == 'ok' then
            n = n + 1
            ids[n] = argv[pos]
            pairs[2 * n - 1] = argv[pos]
            pairs[2 * n] = argv[pos + 1]
          end
          pos = pos + 2
        end
      end
    end
  end
  return {n = n, ids = ids, pairs = pairs}
end

-- in_script.write enqueues the follow-ups g holds to the queue whose keys
-- are ks: g.n of them, their ids g.ids (1..n), their contents as HSET's
-- arguments (id, content, id, content, ...) in g.pairs, or, from the
-- block, in ARGV from index g.from on with g.upairs (id, at, ...) for
-- udts; their lock times g.locks and metadata g.metas (by number, nil
-- for none). all tells that every one's success was recorded; else g.js
-- names each one's outcome, whose in_script.recs entry is true when it
-- was. It answers true when this queue's own sleeper is to be woken.
function in_script.write(ks, g, all, at)
  local n, ids, pairs, locks, metas = g.n, g.ids, g.pairs, g.locks, g.metas
  local recs, UNPACK_MAX, argv = in_script.recs, in_script.UNPACK_MAX, ARGV
  local held = false -- (some id found in the queue already)
  if all then
    for c = 1, n, UNPACK_MAX do
      local got = redis.call('hmget', ks[1], unpack(ids, c, math.min(c + UNPACK_MAX - 1, n)))
      for k = 1, #got do
        if got[k] then held = true; break end
      end
      if held then break end
    end
  end
  local added, upairs = 0, g.upairs
  if all and not held then
    if pairs then
      for c = 1, 2 * n, 2 * UNPACK_MAX do
        added = added + redis.call('hset', ks[1], unpack(pairs, c, math.min(c + 2 * UNPACK_MAX - 1, 2 * n)))
      end
    else
      local last = g.from + 2 * n - 1
      for c = g.from, last, 2 * UNPACK_MAX do
        added = added + redis.call('hset', ks[1], unpack(argv, c, math.min(c + 2 * UNPACK_MAX - 1, last)))
      end
    end
  end
  if added < n then
    -- Not the usual call: some success not recorded, an id held, or one
    -- id twice (then the first is the follow-up, as an enqueue of the
    -- second would find it, and its content is written again). Those to
    -- write are gathered anew, and their contents written.
    local got = {} -- (held before: none when this call's HSET added some)
    for c = 1, (added == 0) and n or 0, UNPACK_MAX do
      local part = redis.call('hmget', ks[1], unpack(ids, c, math.min(c + UNPACK_MAX - 1, n)))
      for k = 1, #part do got[c + k - 1] = part[k] end
    end
    local js = g.js
    local seen, new_ids, new_pairs, new_locks, new_metas, m = {}, {}, {}, nil, nil, 0
    for k = 1, n do
      local id = ids[k]
      if (all or recs[js[k]] == true) and not got[k] and not seen[id] then
        seen[id] = true
        m = m + 1
        new_ids[m] = id
        new_pairs[2 * m - 1] = id
        if pairs then new_pairs[2 * m] = pairs[2 * k] else new_pairs[2 * m] = argv[g.from + 2 * k - 1] end
        if locks and locks[k] then
          new_locks = new_locks or {}
          new_locks[m] = locks[k]
        end
        if metas and metas[k] then
          new_metas = new_metas or {}
          new_metas[m] = metas[k]
        end
      end
    end
    n, ids, pairs, locks, metas, upairs = m, new_ids, new_pairs, new_locks, new_metas, nil
    in_script.call_each('hset', ks[1], pairs)
  end
  if n == 0 then return false end
  if not upairs then
    for k = 1, n do pairs[2 * k] = at end
    upairs = pairs
  end
  in_script.call_each('hset', ks[2], upairs)
  for f = 7, 8 do -- lock-times (ks[7]) and meta (ks[8]), of those that have them
    local vals = f == 7 and locks or f == 8 and metas
    if vals then
      local l, x = {}, 0
      for k = 1, n do
        if vals[k] then l[x + 1] = ids[k]; l[x + 2] = vals[k]; x = x + 2 end
      end
      in_script.call_each('hset', ks[f], l)
    end
  end
  local len = 0
  for c = 1, n, UNPACK_MAX do
    len = redis.call('lpush', ks[3], unpack(ids, c, math.min(c + UNPACK_MAX - 1, n)))
  end
  if len == n and redis.call('exists', ks[4]) == 0 then
    redis.call('lpush', ks[4], in_script.END_OF_CIRCLE)
  end
  if len - n >= in_script.WAKE_BACKLOG * n then
    return false -- (past the backlog: no sleeper waits for this wake)
  elseif ks == in_script.own then
    return true
  end
  in_script.move_sentinel(ks[5], ks[6], len % 2 == 1)
  return false
end

-- in_script.relay appends rec, a success's follow-ups for the relay, to
-- handoffs, and marks the queue as using handoffs (features). Only the
-- full poll makes it (it has outcome-ext.lua, and prelude-ext.lua's
-- K_HANDOFFS): a lean call carries no follow-ups for the relay (refused
-- before anything is written, §4), and a closure not made costs a call
-- nothing.
if ext.cancel_asked then
  function in_script.relay(rec)
    redis.call('rpush', K_HANDOFFS, rec)
    if not feature_used('handoffs') then
      redis.call('hset', K_FEATURES, 'handoffs', '1')
      features.handoffs = true
    end
  end
end

-- hand_off records a success's follow-ups (§22): those the client sent to
-- enqueue here (an 'S' record, checked as j's by in_script.check) are
-- marked recorded for in_script.flush; a record for the relay is appended
-- to handoffs (in_script.relay).
function ext.hand_off(followups, j)
  if followups == nil or followups == '' then return end
  local bm = in_script.bmarks[followups]
  if bm then -- (a mark, checked: its follow-ups are in the block)
    local recorded = in_script.brecorded
    for x = 1, #bm do
      local gi = bm[x]
      recorded[gi] = (recorded[gi] or 0) + 1
    end
    return
  end
  local rest = j and in_script.recs[j]
  if rest then
    in_script.recs[j] = true
    followups = rest
    if followups == '' then return end
  end
  in_script.relay(followups)
end

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
-- in_script.check gathers the follow-ups of every 'S' record of a call,
-- by target, as it parses them (before anything is written):
-- in_script.gathered holds them by target, in the order of
-- in_script.order, five entries each in one flat table (the ARGV index of
-- its outcome group's follow-ups, id, content, lock time, metadata);
-- in_script.recs, by that ARGV index, the record's rest (for the relay,
-- '' for none) once checked, and true once hand_off found its success
-- recorded: in_script.flush enqueues only those. (Gathered once, as
-- parsed: a table per outcome, copied by target at its success, cost the
-- script more than the copies saved.) in_script.targets holds the keys
-- of each target queue, by name; in_script.struct is Redis's struct
-- library, nil where the server lacks it.
local in_script = {first = 0, recs = {}, targets = {}, gathered = {}, order = {}, struct = rawget(_G, 'struct')}
ext.in_script = in_script

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
-- index j and gathers its follow-ups (in_script.gathered). It answers
-- nil and the record's rest, the record for the relay, or an error text
-- when the record is damaged or names a queue whose keys the call lacks:
-- the call is then refused before anything is written.
function in_script.check(j, rec)
  local gathered, order = in_script.gathered, in_script.order
  local n, i, target, id, data, lock, meta
  if in_script.struct then
    -- A worker's usual record holds one follow-up: its count and its five
    -- fields are read by one unpack. (A record of another count may
    -- unpack too, its fields misread: they are then read again below.)
    local ok, c, t, d1, d2, l, m, after =
      pcall(in_script.struct.unpack, '<I4c0I4c0I4c0I4c0I4c0I4c0', rec, 2)
    if ok and c == '1' then
      n, i, target, id, data, lock, meta = 1, after, t, d1, d2, l, m
    end
  end
  if not n then
    n, i = in_script.field_at(rec, 2)
    n = tonumber(n)
    if not n then return 'a damaged follow-ups record' end
  end
  for k = 1, n do
    if k > 1 or not target then -- (the one unpack above read the first)
      target, id, data, lock, meta, i = in_script.fields(rec, i)
      if not target then return 'a damaged follow-ups record' end
    end
    local ks = in_script.keys(target)
    if not ks then return 'no keys for the follow-ups to ' .. target end
    local fs = gathered[ks[1]]
    if not fs then
      fs = {}
      gathered[ks[1]] = fs
      order[#order + 1] = ks
    end
    local m = #fs
    fs[m + 1], fs[m + 2], fs[m + 3], fs[m + 4], fs[m + 5] = j, id, data, lock, meta
  end
  local rest = ''
  if i <= #rec then rest = string.sub(rec, i) end
  in_script.recs[j] = rest
  return nil, rest
end

-- in_script.flush enqueues the follow-ups gathered, a few commands per
-- target queue, each as an enqueue of a new id would (enqueue.lua's add,
-- §3): its content, first-enqueue time now, metadata and lock time when it
-- has them, at the left of mids-ready in order (and mid-circle's sentinel
-- when the circle is missing), and a sleeping worker of its queue woken,
-- once per queue and call (move_sentinel, lib.lua; this queue's through
-- outcomes_wake), unless its mids-ready held WAKE_BACKLOG ids a follow-up
-- pushed before (wake-backlog.lua; §5, "No wake past a backlog": the push
-- answers the length). An id its queue holds already is this handling's
-- follow-up there already (its id is derived from the handling, unique to
-- it): nothing is written for it. No stale metadata can wait under such
-- an id (§13), so none is deleted. Follow-ups gathered whose success was
-- not recorded (lock-lost, or recorded by an earlier call whose reply
-- was lost) are skipped.
function in_script.flush(now)
  local at -- (formatted once: Redis formats a number argument each time)
  local recs = in_script.recs
  for _, ks in ipairs(in_script.order) do
    local fs = in_script.gathered[ks[1]]
    local ids, udts, locks, metas = {}, {}, {}, {}
    if #fs == 5 then
      if recs[fs[1]] == true and redis.call('hsetnx', ks[1], fs[2], fs[3]) == 1 then
        ids[1] = fs[2]
        if fs[4] ~= '0' then locks[1], locks[2] = fs[2], fs[4] end
        if fs[5] ~= '' then metas[1], metas[2] = fs[2], fs[5] end
      end
    else
      local seen, contents, all, pos = {}, {}, {}, {}
      for k = 1, #fs, 5 do
        if recs[fs[k]] == true then all[#all + 1], pos[#pos + 1] = fs[k + 1], k end
      end
      for c = 1, #all, UNPACK_MAX do
        local held = redis.call('hmget', ks[1], unpack(all, c, math.min(c + UNPACK_MAX - 1, #all)))
        for k = 1, #held do
          local x = pos[c + k - 1]
          local id = fs[x + 1]
          if not held[k] and not seen[id] then
            seen[id] = true
            ids[#ids + 1] = id
            contents[#contents + 1], contents[#contents + 2] = id, fs[x + 2]
            if fs[x + 3] ~= '0' then locks[#locks + 1], locks[#locks + 2] = id, fs[x + 3] end
            if fs[x + 4] ~= '' then metas[#metas + 1], metas[#metas + 2] = id, fs[x + 4] end
          end
        end
      end
      call_each('hset', ks[1], contents)
    end
    if #ids > 0 then
      at = at or tostring(now)
      for k = 1, #ids do udts[2 * k - 1], udts[2 * k] = ids[k], at end
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
      if len - #ids >= WAKE_BACKLOG * #ids then
        -- (past the backlog: no sleeper waits for this wake)
      elseif ks[1] == K_MESSAGES then
        outcomes_wake = true
      else
        move_sentinel(ks[5], ks[6], len % 2 == 1)
      end
    end
  end
  in_script.gathered, in_script.order = {}, {}
end

-- hand_off records a success's follow-ups (§22): those the client sent to
-- enqueue here (an 'S' record, checked as j's by in_script.check) are
-- marked recorded for in_script.flush; a record for the relay is appended
-- to handoffs.
function ext.hand_off(followups, j)
  if followups == nil or followups == '' then return end
  local rest = j and in_script.recs[j]
  if rest then
    in_script.recs[j] = true
    followups = rest
    if followups == '' then return end
  end
  redis.call('rpush', K_HANDOFFS, followups)
  if not feature_used('handoffs') then
    redis.call('hset', K_FEATURES, 'handoffs', '1')
    features.handoffs = true
  end
end

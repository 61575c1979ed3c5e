-- enqueue-new.lua: the request handlers' enqueue, lean (docs/protocol.md
-- §3, "New messages"): a call of messages with no delay, on its first
-- send, whose ids the queue does not hold (an Enqueue, or concurrent
-- Enqueue calls coalesced). It does what enqueue.lua does for such
-- messages, with fewer keys, arguments and commands; a call it cannot take
-- it leaves alone, changing nothing (a short call takes back the push it
-- made first), and answers nil: the client then runs enqueue.lua, which
-- decides every case.
--
-- It is composed without prelude.lua, and with none of lib.lua's
-- functions: every key and argument Redis passes to a script costs about
-- as much as a command the script runs, and every function it defines a
-- closure at every call (the receipt's write and the sentinel's move are
-- written out below, as lib.lua's receipt_put and move_sentinel do them);
-- the prelude binds all thirty-one keys of the queue. redis.call, KEYS
-- and ARGV are bound to locals first, since each use of a global is a
-- lookup in the script's globals. Together these
-- take about 4.5% off what Redis runs for one message
-- (BenchmarkEnqueueNewCost under callgrind: 78.7-78.8 thousand
-- instructions a call, network included, where the script with lib.lua's
-- two functions and the globals took 82.3-82.8).
--
-- It is composed twice: after enqueue-new-full.lua (SHORT false), and
-- after enqueue-new-short.lua (SHORT true), the short call, which is not
-- passed mid-circle and the isleep lists: a client sends it to a queue
-- whose mids-ready held the wake backlog at its last call (below).
--
-- KEYS: messages, udts, mids-ready, enqueue-receipts, then, but in a
--   short call, mid-circle, isleep-a, isleep-b (KEYS_BASE keys so far);
--   then enqueue-receipts-prev, only on a sampled call (the token ends in
--   '0', below); then lock-times and meta, only when a message has a lock
--   time or metadata, or stale metadata of its id may be there (a Carmine
--   worker may read the queue, and the id is not one the client drew for
--   the message)
-- ARGV: on a sampled call only, first: how long to keep the call's
--   receipt at least, in ms
-- then, with lock-times and meta only: '1' when a message without
--   metadata has its meta entry deleted, '0' when not
-- then the call's token on its first send, '' on every send after it (a
--   send after the first looks for the call's receipt: enqueue.lua)
-- then per message: its id and content, and with lock-times and meta its
--   lock time in ms ('0' for the worker's) and metadata ('' for none);
--   but a call of one message whose id the client drew has that id as
--   its token (§8), and passes it once: the token is the message's id,
--   which is not passed again (an odd count of arguments after the token)
-- Every key and argument costs Redis about as much as a command the
-- script runs, so those a call does not use are not passed.
--
-- Reply: a number, the cheapest reply to make and to read: 1 when every
-- message was added, 2 ('deep') when every message was added and
-- mids-ready held the wake backlog before the call, so that it woke
-- nobody (the client's next call may go short); 0 ('keys') from a short
-- call that found mids-ready below the backlog, having changed nothing:
-- the call goes again, full; nil when the call must go through
-- enqueue.lua.
local call = redis.call
local ARGV, KEYS = ARGV, KEYS
local K_MESSAGES, K_UDTS, K_MIDS_READY, K_RECEIPTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- A short call (SHORT, enqueue-new-short.lua) is not passed the keys of
-- the circle and of the wake, which it never needs (below).
local K_MID_CIRCLE, K_ISLEEP_A, K_ISLEEP_B
if not SHORT then
  K_MID_CIRCLE, K_ISLEEP_A, K_ISLEEP_B = KEYS[5], KEYS[6], KEYS[7]
end

-- The common call, one message whose id the client drew, its token
-- (§8), with no optional key, not sampled: the general path below, written
-- out for it alone, saving the branches and the reads that calls of many
-- messages, sampled calls and the optional keys need (some 1,000
-- instructions of Redis's 60,000, BenchmarkEnqueueNewCost's short
-- variant under callgrind). Tests pin that it writes what enqueue.lua
-- writes, as the general path does.
if #ARGV == 2 and #KEYS == KEYS_BASE then
  local id = ARGV[1]
  if id == '' then return nil end
  local ready_len
  if SHORT then
    ready_len = call('lpush', K_MIDS_READY, id)
    if ready_len <= WAKE_BACKLOG then
      call('ltrim', K_MIDS_READY, 1, -1)
      return 0
    end
  end
  if call('hsetnx', K_MESSAGES, id, ARGV[2]) == 0 then
    if SHORT then call('ltrim', K_MIDS_READY, 1, -1) end
    return nil
  end
  local t = call('time')
  local now, us = t[1], t[2]
  if #us == 6 then
    now = now .. string.sub(us, 1, 3)
  else
    now = now .. string.sub('00000' .. us, -6, -4)
  end
  call('hset', K_UDTS, id, now)
  if SHORT then
    call('hset', K_RECEIPTS, id, 'a')
    return 2
  end
  ready_len = call('lpush', K_MIDS_READY, id)
  if ready_len == 1 and call('exists', K_MID_CIRCLE) == 0 then
    call('lpush', K_MID_CIRCLE, 'end-of-circle')
  end
  call('hset', K_RECEIPTS, id, 'a')
  if ready_len > WAKE_BACKLOG then return 2 end
  local from, to = K_ISLEEP_A, K_ISLEEP_B
  if ready_len % 2 == 1 then from, to = K_ISLEEP_B, K_ISLEEP_A end
  if not call('rpoplpush', from, to) then
    if not call('rpoplpush', to, from) then
      call('lpush', K_ISLEEP_A, '_')
    end
  end
  return 1
end

-- at: the token's argument; per: the arguments a message. The common
-- call (no key past the KEYS_BASE of its head file) has nothing before
-- the token, and two arguments a message. One call in sixteen (sampled:
-- the token's last digit is '0', one key more) also reads when the
-- receipts' current generation began, and starts a new one when it is
-- old enough.
local at, per = 1, 2
local K_RECEIPTS_PREV, keep_ms, K_LOCK_TIMES, K_META, mode
local nkeys = #KEYS
if nkeys > KEYS_BASE then
  local k = KEYS_BASE + 1
  if (nkeys - KEYS_BASE) % 2 == 1 then
    K_RECEIPTS_PREV, keep_ms, k, at = KEYS[k], tonumber(ARGV[1]), k + 1, 2
  end
  if k < nkeys then
    K_LOCK_TIMES, K_META, mode, per, at = KEYS[k], KEYS[k + 1], ARGV[at], 4, at + 1
  end
end
local token = ARGV[at]
if token == '' then return nil end

-- n: the messages; at from here on: the first message's id (the token
-- itself when it is the id, one argument fewer).
local id, ids, fields -- fields: id, content, id, content..., then id, now...
local n = #ARGV - at
if n % 2 == 1 then
  n, id = 1, token
else
  at = at + 1
  n = n / per
  if n == 1 then
    id = ARGV[at]
  else
    ids, fields = {}, {}
    for i = 1, n do
      local a = at + (i - 1) * per
      ids[i], fields[2 * i - 1], fields[2 * i] = ARGV[a], ARGV[a], ARGV[a + 1]
    end
  end
end

-- push pushes every id onto mids-ready, in order, as one push each would
-- leave them, and answers the list's length; unpush takes them back.
-- A short call pushes first: only a list that held the wake backlog
-- (WAKE_BACKLOG a message, wake-backlog.lua) wants neither a wake nor a
-- look at the circle, and a short call finding it shorter takes its ids
-- back and answers 0 ('keys'), having changed nothing: the client sends the
-- call again with those keys (docs/protocol.md §3).
local ready_len
if SHORT then
  if n == 1 then
    ready_len = call('lpush', K_MIDS_READY, id)
  else
    ready_len = call('lpush', K_MIDS_READY, unpack(ids))
  end
  if ready_len - n < WAKE_BACKLOG * n then
    call('ltrim', K_MIDS_READY, n, -1)
    return 0
  end
end

-- The contents: one new id is both checked and stored by HSETNX; many are
-- read with one HMGET, and stored with one HSET only if all are new and
-- distinct. Either is the script's first write (the push before it in a
-- short call), refused before anything is written when Redis is over
-- maxmemory (§9); a short call that finds an id held takes its push back.
-- One message, the common case, builds no table.
if n == 1 then
  if call('hsetnx', K_MESSAGES, id, ARGV[at + 1]) == 0 then
    if SHORT then call('ltrim', K_MIDS_READY, n, -1) end
    return nil
  end
else
  local seen = {}
  for i, held in ipairs(call('hmget', K_MESSAGES, unpack(ids))) do
    if held or seen[ids[i]] then
      if SHORT then call('ltrim', K_MIDS_READY, n, -1) end
      return nil
    end
    seen[ids[i]] = true
  end
  call('hset', K_MESSAGES, unpack(fields))
end

-- The server's time in ms, as a string: TIME's seconds and the first three
-- of its microseconds' six digits (padded only when it has fewer, one
-- call in ten), so that Lua formats no number.
local t = call('time')
local now, us = t[1], t[2]
if #us == 6 then
  now = now .. string.sub(us, 1, 3)
else
  now = now .. string.sub('00000' .. us, -6, -4)
end
if n == 1 then
  call('hset', K_UDTS, id, now)
else
  for i = 1, n do
    fields[2 * i] = now
  end
  call('hset', K_UDTS, unpack(fields))
end

if K_LOCK_TIMES then
  local locks, metas, stale = {}, {}, {}
  for i = 1, n do
    local a = at + (i - 1) * per
    local lock_ms, meta = ARGV[a + 2], ARGV[a + 3]
    local mid = id or ids[i]
    if lock_ms ~= '0' then
      locks[#locks + 1], locks[#locks + 2] = mid, lock_ms
    end
    if meta ~= '' then
      metas[#metas + 1], metas[#metas + 2] = mid, meta
    else
      -- A Carmine worker collects an id without our keys: metadata it
      -- left behind must not ride on the new message (§13).
      stale[#stale + 1] = mid
    end
  end
  if #locks > 0 then call('hset', K_LOCK_TIMES, unpack(locks)) end
  if #metas > 0 then call('hset', K_META, unpack(metas)) end
  if #stale > 0 and mode == '1' then call('hdel', K_META, unpack(stale)) end
end

-- One push for all, in order, as one push each would leave them (a short
-- call pushed them already). mids-ready is never left holding ids while
-- mid-circle is missing, so the circle needs a look only when mids-ready
-- was empty.
if not SHORT then
  if n == 1 then
    ready_len = call('lpush', K_MIDS_READY, id)
  else
    ready_len = call('lpush', K_MIDS_READY, unpack(ids))
  end
  if ready_len == n and call('exists', K_MID_CIRCLE) == 0 then
    call('lpush', K_MID_CIRCLE, 'end-of-circle')
  end
end

-- The receipt (§8), as enqueue.lua writes it on a first send; a sampled
-- call reads when the current generation began, and starts a new one when
-- it is old enough.
local codes = 'a'
if n > 1 then codes = string.rep('a', n) end
if not K_RECEIPTS_PREV then
  call('hset', K_RECEIPTS, token, codes)
else
  local since = tonumber(call('hget', K_RECEIPTS, '@since'))
  if since and tonumber(now) - since >= keep_ms then
    call('unlink', K_RECEIPTS_PREV)
    call('rename', K_RECEIPTS, K_RECEIPTS_PREV)
    since = nil
  end
  if since then
    call('hset', K_RECEIPTS, token, codes)
  else
    call('hset', K_RECEIPTS, '@since', now, token, codes)
  end
end

-- Wake one sleeping worker (§5), once for the call, as enqueue.lua does,
-- unless mids-ready held WAKE_BACKLOG ids a message before the call
-- (wake-backlog.lua; LPUSH told its length): the sleepers there were are
-- woken already. Past it, a call answers 2 ('deep'), so that the client's
-- next call on the queue goes short (a short call is always past it).
-- The sentinel moves to the other isleep list (created in isleep-a the
-- first time), looking first where it went if nothing was taken since the
-- queue's first enqueue (an odd length: b).
if ready_len - n >= WAKE_BACKLOG * n then return 2 end
local from, to = K_ISLEEP_A, K_ISLEEP_B
if ready_len % 2 == 1 then from, to = K_ISLEEP_B, K_ISLEEP_A end
if not call('rpoplpush', from, to) then
  if not call('rpoplpush', to, from) then
    call('lpush', K_ISLEEP_A, '_')
  end
end
return 1

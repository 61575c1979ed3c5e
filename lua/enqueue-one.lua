-- enqueue-one.lua: the request handler's enqueue, lean (docs/protocol.md
-- §3, "One new message"): one message with no delay, on its call's first
-- send, whose id the queue does not hold. It does what enqueue.lua does for
-- such a message, with fewer keys, arguments and commands; anything else it
-- leaves alone, writing nothing, and answers nil: the client then runs
-- enqueue.lua, which decides every case.
--
-- It is composed alone, without prelude.lua: every key and argument Redis
-- passes to a script costs about as much as a command the script runs, and
-- the prelude binds all thirty keys of the queue and defines functions this
-- script does not call.
--
-- KEYS: messages, udts, mids-ready, mid-circle, isleep-a, isleep-b,
--   enqueue-receipts, enqueue-receipts-prev; then lock-times, only when
--   the message has a lock time; then meta, only when the message has
--   metadata or stale metadata must go (a Carmine worker may read the
--   queue)
-- ARGV[1]: the call's token on its first send, '' on every send after it
--   (a send after the first looks for the call's receipt: enqueue.lua)
-- ARGV[2], ARGV[3]: the message's id and content
-- ARGV[4]: how long to keep the call's receipt at least, in ms
-- ARGV[5]: the message's lock time in ms ('0' for the worker's), when
--   lock-times or meta is in KEYS
-- ARGV[6]: the message's metadata ('' for none), when meta is in KEYS
--
-- Reply: 'added', or nil when the call must go through enqueue.lua.
local K_MESSAGES, K_UDTS, K_MIDS_READY, K_MID_CIRCLE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_ISLEEP_A, K_ISLEEP_B = KEYS[5], KEYS[6]
local K_RECEIPTS, K_RECEIPTS_PREV = KEYS[7], KEYS[8]
local lock_ms = ARGV[5]
local K_LOCK_TIMES, K_META = nil, KEYS[9]
if lock_ms and lock_ms ~= '0' then K_LOCK_TIMES, K_META = KEYS[9], KEYS[10] end

local token, mid = ARGV[1], ARGV[2]
-- HSETNX both stores the content and tells whether the id is new; as the
-- script's first write, it is refused before anything is written when
-- Redis is over maxmemory (§9).
if token == '' or redis.call('hsetnx', K_MESSAGES, mid, ARGV[3]) == 0 then
  return nil
end

-- The server's time in ms, as a string: TIME's seconds and the first three
-- of its six microsecond digits, so that Lua formats no number.
local t = redis.call('time')
local now = t[1] .. string.sub('00000' .. t[2], -6, -4)
redis.call('hset', K_UDTS, mid, now)
if K_META then
  if ARGV[6] ~= '' then
    redis.call('hset', K_META, mid, ARGV[6])
  else
    -- A Carmine worker collects an id without our keys: metadata it left
    -- behind must not ride on the new message (§13).
    redis.call('hdel', K_META, mid)
  end
end
if K_LOCK_TIMES then
  redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
end

-- mids-ready is never left holding ids while mid-circle is missing, so the
-- circle needs a look only when this push finds mids-ready empty.
local ready_len = redis.call('lpush', K_MIDS_READY, mid)
if ready_len == 1 and redis.call('exists', K_MID_CIRCLE) == 0 then
  redis.call('lpush', K_MID_CIRCLE, 'end-of-circle')
end

-- The receipt (§8), as enqueue.lua writes it on a first send: one call in
-- sixteen (the token's last digit is '0') also starts a new generation of
-- receipts when the current one is old enough.
if string.byte(token, -1) == 48 then
  local since = tonumber(redis.call('hget', K_RECEIPTS, '@since'))
  local now_ms = tonumber(now)
  if since and now_ms - since >= tonumber(ARGV[4]) then
    redis.call('unlink', K_RECEIPTS_PREV)
    redis.call('rename', K_RECEIPTS, K_RECEIPTS_PREV)
    since = nil
  end
  if since then
    redis.call('hset', K_RECEIPTS, token, 'a')
  else
    redis.call('hset', K_RECEIPTS, '@since', now, token, 'a')
  end
else
  redis.call('hset', K_RECEIPTS, token, 'a')
end

-- Wake one sleeping worker (§5), as enqueue.lua does: move the sentinel,
-- looking first where it went if nothing was taken since the queue's first
-- enqueue (an odd length: b).
local from, to = K_ISLEEP_A, K_ISLEEP_B
if ready_len % 2 == 1 then from, to = K_ISLEEP_B, K_ISLEEP_A end
if not redis.call('rpoplpush', from, to) then
  if not redis.call('rpoplpush', to, from) then
    redis.call('lpush', K_ISLEEP_A, '_')
  end
end
return 'added'

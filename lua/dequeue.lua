-- dequeue.lua: up to ARGV[7] worker steps of docs/protocol.md §4, run back to back,
-- stopping early after the first 'sleep' (§4, a call of many steps),
-- after recording the outcomes of earlier handlings. With no steps to take,
-- it only records outcomes (the worker's flusher calls it so).
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]    the worker's default lock time in ms
-- ARGV[2..6] the five end-of-queue sleep times in ms
-- ARGV[7]    the most steps to take (0 to only record outcomes)
-- ARGV[8]    the most messages to hand out: the call stops after that many
--            'handle' steps
-- ARGV[9]    '1' to answer the queue size, '0' to spare its five reads
-- ARGV[10]   the poller's id, drawn at random by the worker
-- ARGV[11]   seq: this call's number among its poller's calls, from 1 up
-- ARGV[12]   confirmed: the number of the poller's last call whose reply it
--            received (0 for none)
-- ARGV[13]   how long to keep the poller's receipt at least, in ms
-- ARGV[14]   n, the number of outcomes to record before polling
-- ARGV[15..] n groups of four: mid, locked_until_ms (the token from a poll
--            or a renewal), outcome ('success', 'retry', 'error' or
--            'release'), backoff in ms (0 for none)
--
-- Reply: {queue_size, outcomes, step, step, ...} where queue_size is nqueued
-- of §10 after the steps (-1 when not asked for), outcomes the
-- results of the outcomes, one per group, 'ok' or 'lock-lost' (the lock is
-- no longer the one the handling took: it expired and the message was
-- handed out again, or the message is done or gone; nothing is written for
-- it then), and each step is one of
--   {'sleep', sleep_ms, list ('a' or 'b'), ndry_runs}, the only step of a
--   call on a paused queue
--   {'skip', reason}
--   {'handle', mid, content, attempt, lock_ms, first_enqueued_ms,
--    locked_until_ms, now_ms}
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

local poller, seq, confirmed = ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local default_lock_ms = tonumber(ARGV[1])
local max_steps = tonumber(ARGV[7])
local max_handles = tonumber(ARGV[8])
local n_outcomes = tonumber(ARGV[14])
local now = server_now()

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
    local released = {done = {}, unlock = {}, unlocked = {}}
    local then_ms, then_lock_ms = tonumber(items[3]), tonumber(items[4])
    for i = 5, #items do
      local mid = items[i]
      local token = then_ms + (tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or then_lock_ms)
      record_outcome(mid, token, 'release', 0, now, released)
    end
  end
end
local outcomes = record_outcomes(15, n_outcomes, now, known)

-- useful is set once a step did useful work; ndry-runs is then written
-- as 0 once, before a sleep step reads it or at the end, which leaves the
-- same state as writing it at every such step.
local useful = false

-- ready_empty is set once mids-ready was found empty: nothing but this
-- call's own did-requeue steps can fill it again before the call ends.
local ready_empty = false

-- Gathered writes. A step that takes from mid-circle pops its right end
-- and, unless the mid is dropped, owes a push onto its left end; a step
-- that collects a mid owes one delete per hash and set. Both are gathered
-- and sent as one command per key (flush, below), which leaves the same
-- state as §4's step-by-step writes, in a fraction of the
-- calls:
--   * the owed pushes, sent in order, build the same left end, and are
--     sent before anything else pushes there (a pop from mids-ready) or
--     reads the list's length; no pop of this call reaches them, since a
--     lap ends at the sentinel, which ends the call (if the list lacks the
--     sentinel and runs empty, they are sent and the pop is tried again);
--   * a collected mid reads as absent from then on (collected), as it
--     would once deleted; nothing writes an absent mid's entries.
-- Under maxmemory no write of this script is refused (go_on_when_full,
-- prelude.lua), so a gathered push is never refused either.
local circle_back = {}
local collected, collected_list, collected_backoffs = {}, {}, {}

local function push_circle_back()
  if #circle_back > 0 then
    call_each('lpush', K_MID_CIRCLE, circle_back)
    circle_back = {}
  end
end

local function flush()
  push_circle_back()
  if #collected_list > 0 then
    for _, key in ipairs({K_MESSAGES, K_LOCK_TIMES, K_LOCK_TIMES_RQ, K_UDTS, K_LOCKS, K_NATTEMPTS, K_LOCK_ALIASES}) do
      call_each('hdel', key, collected_list)
    end
    call_each('srem', K_DONE, collected_list)
    call_each('hdel', K_BACKOFFS, collected_backoffs)
    collected_list, collected_backoffs = {}, {}
  end
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
    redis.call('ltrim', K_ISLEEP_A, 0, 0)
  elseif nb > 1 then
    redis.call('ltrim', K_ISLEEP_B, 0, 0)
  end
  if na > 0 then return 'b' end
  return 'a'
end

-- take takes the next mid (step 1): from mids-ready onto mid-circle, or
-- else from mid-circle's right end, and tells which.
local function take()
  if not ready_empty then
    push_circle_back()
    local mid = redis.call('rpoplpush', K_MIDS_READY, K_MID_CIRCLE)
    if mid then return mid, false end
    ready_empty = true
  end
  local mid = redis.call('rpop', K_MID_CIRCLE)
  if (not mid) and #circle_back > 0 then
    push_circle_back()
    mid = redis.call('rpop', K_MID_CIRCLE)
  end
  return mid, true
end

-- decide takes steps 2 and 3 for mid and answers the step, and whether a
-- mid taken from mid-circle leaves it.
local function decide(mid, from_circle)
  if (not mid) or mid == END_OF_CIRCLE then
    local ndry_runs = 0
    if not useful then
      ndry_runs = tonumber(redis.call('get', K_NDRY_RUNS)) or 0
    end
    local sleep_ms = tonumber(ARGV[1 + math.min(5, ndry_runs + 1)])
    redis.call('set', K_NDRY_RUNS, ndry_runs + 1)
    useful = false
    return {'sleep', sleep_ms, sleep_list(), ndry_runs + 1}, false
  end

  -- One read of messages answers both whether mid is in the queue and,
  -- when it is handed out, its content.
  local content = false
  if not collected[mid] then
    content = redis.call('hget', K_MESSAGES, mid)
  end
  local base, in_backoff, has_backoff = message_status(mid, now, content ~= false)
  if base == 'nil' then
    if from_circle then
      return {'skip', 'did-trim'}, true
    end
    return {'skip', 'unexpected'}, false
  elseif base == 'locked' then
    return {'skip', 'locked'}, false
  elseif in_backoff then
    if base == 'queued' then return {'skip', 'queued-with-backoff'}, false end
    return {'skip', 'done-with-backoff'}, false
  end

  useful = true

  if base == 'done' then
    if has_requeue(mid) then
      local content = redis.call('hget', K_MESSAGES_RQ, mid)
        or redis.call('hget', K_MESSAGES, mid) -- legacy requeue set
      local lock_ms = redis.call('hget', K_LOCK_TIMES_RQ, mid) or default_lock_ms
      redis.call('hset', K_MESSAGES, mid, content)
      redis.call('hset', K_UDTS, mid, now)
      redis.call('hset', K_LOCK_TIMES, mid, lock_ms)
      redis.call('hdel', K_MESSAGES_RQ, mid)
      redis.call('hdel', K_LOCK_TIMES_RQ, mid)
      redis.call('hdel', K_NATTEMPTS, mid)
      redis.call('srem', K_DONE, mid)
      redis.call('srem', K_REQUEUE, mid)
      redis.call('lpush', K_MIDS_READY, mid)
      ready_empty = false
      return {'skip', 'did-requeue'}, false
    end
    -- Collect it. messages-rq and the legacy requeue set were just found
    -- not to hold it; backoffs was read by message_status.
    collected[mid] = true
    collected_list[#collected_list + 1] = mid
    if has_backoff then
      collected_backoffs[#collected_backoffs + 1] = mid
    end
    return {'skip', 'did-gc'}, from_circle
  end

  -- queued, not in backoff, lock absent or expired: hand it out.
  local lock_ms = tonumber(redis.call('hget', K_LOCK_TIMES, mid)) or default_lock_ms
  local locked_until = now + lock_ms
  redis.call('hset', K_LOCKS, mid, locked_until)
  local attempt = redis.call('hincrby', K_NATTEMPTS, mid, 1)
  local udt = tonumber(redis.call('hget', K_UDTS, mid)) or now
  return {'handle', mid, content, attempt, lock_ms, udt, locked_until, now}, false
end

local reply = {0, outcomes}
local handed = {}
if max_steps > 0 and redis.call('exists', K_PAUSED) == 1 then
  -- Paused (beyond Carmine, §10): outcomes are recorded, nothing is handed
  -- out, and the worker sleeps its longest end-of-queue sleep, or until
  -- a resume or an enqueue wakes it. ndry-runs stays as it is.
  local ndry_runs = tonumber(redis.call('get', K_NDRY_RUNS)) or 0
  reply[3] = {'sleep', tonumber(ARGV[6]), sleep_list(), ndry_runs}
  max_steps = 0
end
for _ = 1, max_steps do
  if #handed >= max_handles then break end
  local mid, from_circle = take()
  local answer, dropped = decide(mid, from_circle)
  if mid and from_circle and not dropped then
    circle_back[#circle_back + 1] = mid
  end
  reply[#reply + 1] = answer
  if answer[1] == 'sleep' then break end
  if answer[1] == 'handle' then
    handed[#handed + 1] = answer[2]
  end
end
flush()
if useful then
  redis.call('set', K_NDRY_RUNS, 0)
end

if n_outcomes > 0 or #handed > 0 or consumed or confirmed < seq - 1 then
  local answers = {}
  for i, r in ipairs(outcomes) do
    answers[i] = (r == 'ok') and 'o' or 'l'
  end
  local items = {ARGV[11], table.concat(answers), tostring(now), ARGV[1]}
  for _, mid in ipairs(handed) do items[#items + 1] = mid end
  receipt_put(K_POLL_RECEIPTS, K_POLL_RECEIPTS_PREV, poller, pack(items), since, tonumber(ARGV[13]), now)
end

if ARGV[9] == '1' then
  local _, _, _, _, nqueued = queue_counts()
  reply[1] = nqueued
else
  reply[1] = -1
end
return reply

-- prelude.lua: composed in front of every script that binds all of a
-- queue's keys, after lib.lua, by internal/protocol.
--
-- KEYS[1..52]: every key of one queue, in the order of internal/keys:
--   messages, messages-rq, lock-times, lock-times-rq, udts, locks, backoffs,
--   nattempts, done, requeue, mids-ready, mid-circle, ndry-runs,
--   isleep-a, isleep-b (Carmine's), then lock-aliases, enqueue-receipts,
--   enqueue-receipts-prev, poll-receipts, poll-receipts-prev, paused, due,
--   windows, noutcomes, dead, dead-index, workers, worker-info, meta, resumed,
--   history, attempt-errors, nsolo, features, policy, prio-hi, prio-lo, prio,
--   results, results-index, handoffs, batches, batch-seen, cancels, progress,
--   limits, rate-tat, rate-keys, slots, slot-counts, parked, limit-key
--   (beyond Carmine, which ignores them)
-- Scripts name keys only through these locals, never by building a string,
-- so that Redis Cluster routes every call to the queue's slot. The keys
-- from results on (the 39th to the 52nd) are bound by prelude-ext.lua,
-- composed after this file in every script but the lean poll's (§4).
local K_MESSAGES      = KEYS[1]
local K_MESSAGES_RQ   = KEYS[2]
local K_LOCK_TIMES    = KEYS[3]
local K_LOCK_TIMES_RQ = KEYS[4]
local K_UDTS          = KEYS[5]
local K_LOCKS         = KEYS[6]
local K_BACKOFFS      = KEYS[7]
local K_NATTEMPTS     = KEYS[8]
local K_DONE          = KEYS[9]
local K_REQUEUE       = KEYS[10]
local K_MIDS_READY    = KEYS[11]
local K_MID_CIRCLE    = KEYS[12]
local K_NDRY_RUNS     = KEYS[13]
local K_ISLEEP_A      = KEYS[14]
local K_ISLEEP_B      = KEYS[15]
local K_LOCK_ALIASES  = KEYS[16]
local K_ENQUEUE_RECEIPTS      = KEYS[17]
local K_ENQUEUE_RECEIPTS_PREV = KEYS[18]
local K_POLL_RECEIPTS         = KEYS[19]
local K_POLL_RECEIPTS_PREV    = KEYS[20]
local K_PAUSED                = KEYS[21]
local K_DUE                   = KEYS[22]
local K_WINDOWS               = KEYS[23]
local K_NOUTCOMES             = KEYS[24]
local K_DEAD                  = KEYS[25]
local K_DEAD_INDEX            = KEYS[26]
local K_WORKERS               = KEYS[27]
local K_WORKER_INFO           = KEYS[28]
local K_META                  = KEYS[29]
local K_RESUMED               = KEYS[30]
local K_HISTORY               = KEYS[31]
local K_ATTEMPT_ERRORS        = KEYS[32]
local K_NSOLO                 = KEYS[33]
local K_FEATURES              = KEYS[34]
local K_POLICY                = KEYS[35]
local K_PRIO_HI               = KEYS[36]
local K_PRIO_LO               = KEYS[37]
local K_PRIO                  = KEYS[38]

-- The sentinel that marks one lap of mid-circle.
local END_OF_CIRCLE = 'end-of-circle'

-- Under maxmemory, Redis checks memory once per script: before the first
-- write command that may grow memory (a "denyoom" command such as HSET),
-- and only if no write of any kind ran before it in the script. From then
-- on every write of the script is let through. So the first write of a
-- script decides, and the two functions below make that decision
-- explicit, as a script's first write.

-- refuse_when_full fails the script with Redis's OOM error when Redis is
-- over maxmemory, before anything is written: SETRANGE with an empty
-- value is a denyoom command that changes nothing. Enqueues call it, so
-- that a full Redis refuses new messages instead of growing past its
-- limit.
local function refuse_when_full()
  redis.call('setrange', K_NDRY_RUNS, 0, '')
end

-- go_on_when_full lets the rest of the script write even when Redis is
-- over maxmemory: HDEL is a write that Redis never refuses, and deleting a
-- field no mid may have changes nothing. Polls, outcomes and renewals call
-- it: they write little, and handling and collecting messages is what
-- frees memory, so a full Redis must not stop the workers.
local function go_on_when_full()
  redis.call('hdel', K_LOCKS, END_OF_CIRCLE)
end

-- pack and unpack_items store a list of strings as one string, each item
-- after its length in three bytes, so that any bytes (mids are arbitrary)
-- survive. (Lua turns a number into a string with sprintf, which costs more
-- than the rest of the packing together: items are strings already.)
local function pack(items)
  local parts = {}
  for _, s in ipairs(items) do
    local n = #s
    parts[#parts + 1] = string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536))
    parts[#parts + 1] = s
  end
  return table.concat(parts)
end

local function unpack_items(s)
  local items, i = {}, 1
  while i + 2 <= #s do
    local a, b, c = string.byte(s, i, i + 2)
    local n = a + 256 * b + 65536 * c
    items[#items + 1] = string.sub(s, i + 3, i + 2 + n)
    i = i + 3 + n
  end
  return items
end

-- wake_one moves the queue's sleep sentinel (move_sentinel, lib.lua),
-- which unblocks one worker sleeping at the end of the queue.
local function wake_one(b_first)
  move_sentinel(K_ISLEEP_A, K_ISLEEP_B, b_first)
end

-- due_sooner tells whether a due entry at time at (ms) comes before every
-- due entry the queue had when the script started and every time passed
-- to it since (docs/protocol.md §11): a sleeping worker sleeps until the
-- earliest one at most, so only a sooner one needs to wake it. It reads
-- due once per script.
local earliest_due = nil
local function due_sooner(at)
  if earliest_due == nil then
    local first = redis.call('zrange', K_DUE, 0, 0, 'WITHSCORES')
    earliest_due = tonumber(first[2]) or math.huge
  end
  if at < earliest_due then
    earliest_due = at
    return true
  end
  return false
end

-- lib.lua: composed first into every script by internal/protocol: what
-- needs none of a queue's keys bound, so that enqueue-new.lua, which binds
-- only the few it uses, shares it with the scripts that bind them all
-- (prelude.lua).

-- Redis before 7 may replicate a script verbatim (lua-replicate-commands
-- no), and then refuses a write after TIME unless told to replicate the
-- script's effects. From 7 on effects are all it replicates, and
-- redis.replicate_commands does nothing; Redis 7 is also the first to
-- set redis.REDIS_VERSION, and looking at it costs a call some 500
-- instructions less than calling the no-op (BenchmarkEnqueueNewCost
-- under callgrind).
if not redis.REDIS_VERSION then redis.replicate_commands() end

-- server_now is the Redis server's clock in Unix milliseconds, so that
-- workers on machines with skewed clocks agree.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Receipts. A receipt records what a call applied, under an id the client
-- sends with the call (and sends again if it resends the call), so that a
-- resent or repeated call can recognise its own earlier application. The
-- receipts of one kind live in a pair of hashes: cur, and prev, the
-- generation before. cur's field '@since' holds when it was started; once
-- it is keep_ms old, the next write starts a new generation (prev is
-- dropped, cur becomes prev), so a receipt lives at least keep_ms and at
-- most about twice that, and the hashes never grow beyond what two
-- generations wrote. Ids are hex digits and never '@since'.

-- receipt_get answers the receipt under id (false if none) and cur's
-- '@since' (nil if cur is new).
local function receipt_get(cur, prev, id)
  local got = redis.call('hmget', cur, id, '@since')
  local value = got[1]
  if not value then value = redis.call('hget', prev, id) end
  return value, tonumber(got[2])
end

-- receipt_put writes the receipt under id, starting a new generation when
-- cur is keep_ms old (since as receipt_get answered it).
local function receipt_put(cur, prev, id, value, since, keep_ms, now)
  if since and now - since >= keep_ms then
    redis.call('unlink', prev)
    redis.call('rename', cur, prev)
    since = nil
  end
  if since then
    redis.call('hset', cur, id, value)
  else
    redis.call('hset', cur, '@since', now, id, value)
  end
end

-- move_sentinel moves the sleep sentinel to the other isleep list, which
-- unblocks one worker sleeping on it (docs/protocol.md §5), creating it
-- in isleep_a the first time. Moving it twice in one script would put it
-- back where it was and wake nobody. It looks in isleep_a first, or in
-- isleep_b when b_first says the sentinel is more likely there: one
-- command instead of two when the guess is right, the same move either
-- way.
local function move_sentinel(isleep_a, isleep_b, b_first)
  local from, to = isleep_a, isleep_b
  if b_first then from, to = isleep_b, isleep_a end
  if not redis.call('rpoplpush', from, to) then
    if not redis.call('rpoplpush', to, from) then
      redis.call('lpush', isleep_a, '_')
    end
  end
end

-- tagged_get answers mid's entry in hash (policy, prio), written as
-- '<first-enqueue ms>:<value>', when its tag is udt, the message's
-- first-enqueue time; false for none, and for a stale entry left by an
-- earlier message of the same id (a Carmine worker's collection does not
-- know these keys; docs/protocol.md §14).
local function tagged_get(hash, mid, udt)
  local v = redis.call('hget', hash, mid)
  if not v then return false end
  local tag, value = string.match(v, '^(%d+):(.*)$')
  if not tag or tonumber(tag) ~= tonumber(udt) then return false end
  return value
end

-- history.lua: the queue's outcomes per minute (docs/protocol.md §17),
-- counted as outcome.lua records them and written once per call. Composed
-- in front of outcome.lua, wherever it goes.
--
-- history is a hash of fields "<minute>p" (handlings recorded with an
-- outcome: success, retry or dead), "<minute>f" (those of them that
-- failed: retry or dead) and "<minute>d" (dead letters written: dead and
-- quarantined), where minute is the server's Unix time in whole minutes,
-- and "last", the latest minute written. A field exists only once its
-- count is above 0.

-- HISTORY_MINUTES is how many minutes the history keeps: a day.
local HISTORY_MINUTES = 1440

-- The counts of this call, by field letter, written by flush_history.
local history_counts = {p = 0, f = 0, d = 0}

-- count_history counts one more of kind ('p', 'f' or 'd') in this call.
local function count_history(kind)
  history_counts[kind] = history_counts[kind] + 1
end

-- flush_history adds this call's counts to the minute of now, one
-- HINCRBY per kind counted. The minute's first write (the HINCRBY of p
-- creates its field, or the call counted no handling) also reads "last":
-- when the minute is later, the minutes that left the day since are
-- deleted (all of them with the key when a day or more passed, else up to
-- three fields a minute) and "last" moves to it, so that the key never
-- holds more than a day and a minute, at a cost paid once a minute; the
-- common call, of handlings in a minute seen before, costs the HINCRBY of
-- p alone. A minute a day or more before "last" (the server's clock went
-- back that far) is not written. Every field is of a minute after "last"
-- less a day: so a field found there is of a minute that was checked.
local function flush_history(now)
  local c = history_counts
  if c.p + c.f + c.d == 0 then return end
  history_counts = {p = 0, f = 0, d = 0}
  local minute = math.floor(now / 60000)
  local seen = false
  if c.p > 0 then
    seen = redis.call('hincrby', K_HISTORY, minute .. 'p', c.p) > c.p
  end
  if not seen then
    local last = tonumber(redis.call('hget', K_HISTORY, 'last'))
    if last ~= nil and minute <= last - HISTORY_MINUTES then
      if c.p > 0 then redis.call('hdel', K_HISTORY, minute .. 'p') end -- (new, so all of it)
      return
    end
    if last == nil or minute > last then
      if last ~= nil and minute - last >= HISTORY_MINUTES then
        redis.call('del', K_HISTORY)
        if c.p > 0 then redis.call('hset', K_HISTORY, minute .. 'p', c.p) end
      elseif last ~= nil then
        local old = {}
        for m = last - HISTORY_MINUTES + 1, minute - HISTORY_MINUTES do
          old[#old + 1] = m .. 'p'
          old[#old + 1] = m .. 'f'
          old[#old + 1] = m .. 'd'
        end
        -- (at most 3 * 1439 fields: one command, well inside unpack's reach)
        if #old > 0 then redis.call('hdel', K_HISTORY, unpack(old)) end
      end
      redis.call('hset', K_HISTORY, 'last', minute)
    end
  end
  if c.f > 0 then redis.call('hincrby', K_HISTORY, minute .. 'f', c.f) end
  if c.d > 0 then redis.call('hincrby', K_HISTORY, minute .. 'd', c.d) end
end

-- attempt-errors.lua: the errors of a message's latest failed attempts
-- (docs/protocol.md §17), kept while it is in the queue and moved into its
-- dead letter when it is buried. Composed in front of outcome.lua, after
-- prelude.lua, whose pack and unpack_items it uses.
--
-- attempt-errors[mid] holds pack()ed items in threes: the attempt's
-- number, when it failed (server ms), and its error text.

-- ATTEMPT_ERRORS_KEPT is how many attempts' errors a message keeps, the
-- latest; ATTEMPT_ERROR_MAX bounds each one's text, in bytes.
local ATTEMPT_ERRORS_KEPT = 5
local ATTEMPT_ERROR_MAX = 1024

-- attempt_errors answers mid's kept errors (items in threes, oldest
-- first), those of attempts before the attempt numbered before only: an
-- entry of a later attempt was left by an earlier life of the id (a
-- Carmine worker collected it, leaving this key's entry behind), and is
-- dropped.
local function attempt_errors(mid, before)
  local s = redis.call('hget', K_ATTEMPT_ERRORS, mid)
  if not s then return {} end
  local items, out = unpack_items(s), {}
  for i = 1, #items - 2, 3 do
    if (tonumber(items[i]) or math.huge) < before then
      out[#out + 1] = items[i]
      out[#out + 1] = items[i + 1]
      out[#out + 1] = items[i + 2]
    end
  end
  return out
end

-- with_attempt_error adds one attempt's error to items (as attempt_errors
-- answers them) and drops the oldest beyond ATTEMPT_ERRORS_KEPT.
local function with_attempt_error(items, attempt, now, err)
  items[#items + 1] = tostring(attempt)
  items[#items + 1] = tostring(now)
  items[#items + 1] = string.sub(err, 1, ATTEMPT_ERROR_MAX)
  if #items > 3 * ATTEMPT_ERRORS_KEPT then
    local kept = {}
    for i = #items - 3 * ATTEMPT_ERRORS_KEPT + 1, #items do
      kept[#kept + 1] = items[i]
    end
    items = kept
  end
  return items
end

-- note_attempt_error keeps the error err of mid's current attempt, which
-- failed and is to be retried. An empty err (a handler that asked for a
-- retry without failing) is not kept.
local function note_attempt_error(mid, now, err)
  if err == nil or err == '' then return end
  local attempt = tonumber(redis.call('hget', K_NATTEMPTS, mid)) or 0
  local items = with_attempt_error(attempt_errors(mid, attempt), attempt, now, err)
  redis.call('hset', K_ATTEMPT_ERRORS, mid, pack(items))
end

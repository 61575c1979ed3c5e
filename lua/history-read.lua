-- history-read.lua: the queue's outcomes per minute (docs/protocol.md
-- §17), from a given time to the server's current minute, within the day
-- the history keeps. It writes nothing.
--
-- KEYS: the queue's keys (prelude.lua).
-- ARGV[1]  since, Unix ms: the first minute answered is the one holding
--          it, or the oldest one the history keeps if that is later
-- ARGV[2]  (optional) n > 0: answer the last n minutes by the server's
--          clock instead, ignoring since, so that a caller whose clock
--          differs from the server's reads only what it shows
--
-- Reply: {now_ms, first_minute, p, f, d, p, f, d, ...}: the server's time
-- and the first minute answered (Unix minutes), then three counts for each
-- minute from it to the current one, in order (see history.lua for what
-- they count; 0 for a minute with none).

local now = server_now()
local minute = math.floor(now / 60000)
local first = math.floor(tonumber(ARGV[1]) / 60000)
local last_n = tonumber(ARGV[2] or '0')
if last_n > 0 then first = minute - last_n + 1 end
first = math.max(first, minute - HISTORY_MINUTES + 1)
if first > minute then first = minute end
local fields = {}
for m = first, minute do
  fields[#fields + 1] = m .. 'p'
  fields[#fields + 1] = m .. 'f'
  fields[#fields + 1] = m .. 'd'
end
local values = redis.call('hmget', K_HISTORY, unpack(fields))
local reply = {now, first}
for i, v in ipairs(values) do
  reply[i + 2] = tonumber(v) or 0
end
return reply

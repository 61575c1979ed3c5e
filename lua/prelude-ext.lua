-- prelude-ext.lua: composed after prelude.lua in every script that binds
-- all of a queue's keys, but the lean poll's (dequeue-lean,
-- dequeue-lean-followups and dequeue-limits, docs/protocol.md §4), by
-- internal/protocol: the keys of the extensions with keys of their own but limits (results ..
-- progress, KEYS[39..45]), which a lean call is not passed (the limits'
-- are in prelude-limits.lua, composed after it). Its compositions leave
-- them unbound: they name them only in code a lean call never reaches
-- (behind a feature it checked is unused), and a name a function uses is
-- an upvalue, bound at every call: Lua 5.1 finds each by walking the list
-- of those already bound, so every one makes every later closure dearer.
local K_RESULTS               = KEYS[39]
local K_RESULTS_INDEX         = KEYS[40]
local K_HANDOFFS              = KEYS[41]
local K_BATCHES               = KEYS[42]
local K_BATCH_SEEN            = KEYS[43]
local K_CANCELS               = KEYS[44]
local K_PROGRESS              = KEYS[45]

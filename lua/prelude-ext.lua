-- prelude-ext.lua: composed after prelude.lua in every script that binds
-- all of a queue's keys, but the lean poll's (dequeue-lean and
-- dequeue-lean-followups, docs/protocol.md §4), by internal/protocol: the
-- keys of the extensions with keys of their own (results .. limit-key,
-- KEYS[39..52]), which a lean call is not passed. Its compositions leave
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
local K_LIMITS                = KEYS[46]
local K_RATE_TAT              = KEYS[47]
local K_RATE_KEYS             = KEYS[48]
local K_SLOTS                 = KEYS[49]
local K_SLOT_COUNTS           = KEYS[50]
local K_PARKED                = KEYS[51]
local K_LIMIT_KEY             = KEYS[52]

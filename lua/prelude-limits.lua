-- prelude-limits.lua: composed after prelude-ext.lua in every script that
-- binds all of a queue's keys, and in the lean poll's composition for a
-- queue with limits (dequeue-limits, docs/protocol.md §4), by
-- internal/protocol: the limits' keys (limits .. limit-key, KEYS[46..52],
-- §19). dequeue-limits leaves prelude-ext.lua out: two of its keys are
-- named by outcome.lua's flush_gathered, behind features a lean call
-- checked are unused, and each such local a closure binds makes every
-- later one dearer (callgrind, mq-limits: 262.2k -> 261.5k instructions a
-- message at 8 a call, 867.9k -> 865.5k at one).
local K_LIMITS                = KEYS[46]
local K_RATE_TAT              = KEYS[47]
local K_RATE_KEYS             = KEYS[48]
local K_SLOTS                 = KEYS[49]
local K_SLOT_COUNTS           = KEYS[50]
local K_PARKED                = KEYS[51]
local K_LIMIT_KEY             = KEYS[52]

-- enqueue-new-short.lua: composed before enqueue-new.lua into its short
-- call (docs/protocol.md §3), which a client sends to a queue whose
-- mids-ready held the wake backlog at its last call: passed neither the
-- circle's key nor the two isleep lists, four keys before the optional
-- ones (KEYS_BASE).
local SHORT, KEYS_BASE = true, 4

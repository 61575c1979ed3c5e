-- enqueue-new-full.lua: composed before enqueue-new.lua into its full
-- call (docs/protocol.md §3), passed every key it may need: seven before
-- the optional ones (KEYS_BASE).
local SHORT, KEYS_BASE = false, 7

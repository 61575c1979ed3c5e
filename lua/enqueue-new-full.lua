-- enqueue-new-full.lua: composed before enqueue-new.lua into its full
-- call (docs/protocol.md §3), passed every key it may need.
local SHORT = false

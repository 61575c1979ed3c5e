-- wake-backlog.lua: composed into the enqueue scripts (enqueue.lua,
-- enqueue-new.lua), before their bodies, and into the poll's compositions
-- with followups.lua, before it (its follow-ups wake by the same rule).

-- WAKE_BACKLOG is the backlog past which an enqueue wakes nobody
-- (docs/protocol.md §5): a call that pushes k ids onto mids-ready moves
-- the sleep sentinel for them only when the list held fewer than
-- WAKE_BACKLOG * k ids before it. A worker lies down at the end of the
-- queue only after its poll found mids-ready empty, and every enqueue
-- call that pushed onto the list since found it shorter and woke one
-- sleeper, so past this backlog the sleepers there were are woken
-- already (up to this many of them, for calls of one message), and a
-- wake would move the sentinel for nobody. internal/protocol's
-- WakeBacklog is the same.
local WAKE_BACKLOG = 1024

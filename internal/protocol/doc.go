// Package protocol runs the queue's Redis scripts (lua/*.lua, which package
// mq embeds and hands to [Load]): it composes them from their shared
// parts, encodes their arguments and parses their replies into plain types
// of its own. It is the protocol of
// docs/protocol.md as the code runs it, and nothing more: deadlines,
// workers and the public errors belong to the root package mq, which calls
// this one.
//
// Every script function takes a context, a [Redis] (a go-redis client or
// pipeline-capable equivalent) and the queue's keys, all of them, in the
// order of internal/keys (keys.All). The sleeps' list commands (sleep.go:
// the blocking moves, the sleep hub's BLMPOP) take a [Sleeper] and the
// lists' names. The administrative commands that are no script (admin.go:
// the scans, the clear, the eviction check's CONFIG GET) are here too, so
// that every command the library sends is. Scripts' answers are checked: a reply
// of a shape the protocol does not know is an error wrapping
// [ErrUnexpectedReply], never a panic, and an error reply of Redis is
// returned as it is ([ErrorCode] tells its code).
//
// Durations go to the scripts in whole milliseconds, rounded up ([MS]),
// so that a positive duration never becomes 0 (which the scripts read as
// "none" or "the default").
//
// The functions are safe for concurrent use.
package protocol

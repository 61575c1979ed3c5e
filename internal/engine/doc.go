// Package engine is a worker's machinery, as parts, each with its own
// lifecycle, joined one way: the way of one message reads fetch, execute,
// complete.
//
//	Fetcher ──deliveries (a channel)──▶ Executor ──Add──▶ Completer
//	   │  ▲                                │                 │
//	   │  └──────── Room (back-pressure) ◀─┘                 │
//	   └──── Take / Done: outcomes ride on polls ◀───────────┘
//	Heartbeat (beside them): the worker's entry and summaries
//
// The Fetcher's polling loops take room, poll (recording the outcomes
// they pulled from the Completer and taking messages, in one script call,
// through a Poller that keeps the receipts), hand the messages to the
// Executor, and sleep at the end of the queue (alarm, the client's sleep
// Hub, nudges). The Executor's handler threads hold each message's Lock
// (renewal, expiry), run the Handler, give back stale deliveries, and
// hand outcomes to the Completer, which records them on the fetcher's
// next poll, or with its own flusher while every loop sleeps, and tells
// one Events sink what became of each.
//
// The parts call Redis only through a Store, a narrow interface over
// internal/protocol bound to one queue, and tell the worker what happened
// through sinks (FetcherEvents, ExecutorEvents, Events). They never import
// the public package, which implements those interfaces and adapts the
// user's handler (mq's handler.go, engine.go).
package engine

// Command mqctl looks at and administers the queues of
// github.com/gocarmine/mq (and so Carmine's queues) in a Redis, a Redis
// Cluster or behind Redis Sentinel: it lists queues with their counts,
// shows a queue's messages page by page and one message with its status and
// decoded content, enqueues, deletes, pauses, resumes and clears, lists,
// shows, requeues and deletes dead letters, lists a queue's live workers in
// every process, and serves the web dashboard.
//
// Usage:
//
//	mqctl [connection flags] COMMAND [ARGS] [--json]
//
// Run "mqctl --help" for the commands and flags; README.md has examples.
//
// Exit codes: 0 success, 1 failure (Redis, bad content, a refused
// confirmation), 2 bad usage (flags, arguments, connection settings),
// 3 not found (a message or dead letter not in its queue), 4 an enqueue
// (or a dead letter's requeue) the queue refused.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	// go-redis logs each failed dial through the standard logger; mqctl
	// reports the error that ends the command, on one line, instead.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

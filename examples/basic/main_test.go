package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// The example runs to its end on an embedded Redis, as the README's first
// command runs it, and prints what it should.
func Example() {
	os.Unsetenv("REDIS_URL")
	if err := mainErr(context.Background(), "examples:basic", slog.LevelWarn); err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// Redis: embedded miniredis (set REDIS_URL to use a real Redis)
	// enqueue email-1: added
	// enqueue email-2: added
	// enqueue email-3: added
	// enqueue email-2 again: refused=mq: already queued (ErrAlreadyQueued: true)
	// queue: 3 queued, 3 total
	// handled email-1 (attempt 1): to=ada@example.com body="hello"
	// handled email-2 (attempt 1): to=bob@example.com body="hi"
	// handled email-3 (attempt 1): to=cy@example.com body="hey"
	// worker: 3 succeeded, 0 failed
	// status email-1: nil
	// status email-2: nil
	// status email-3: nil
}

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
	if err := mainErr(context.Background(), "examples:invoices", slog.LevelWarn); err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// Redis: embedded miniredis (set REDIS_URL to use a real Redis)
	// first: enqueue added
	// while queued: enqueue refused (mq: already queued)
	// attempt 1: the mail server is down, retry in 100ms
	// attempt 2: invoice sent; keep the id for an hour
	// status: done-with-backoff
	// after sending: enqueue refused (mq: in backoff)
	// counts: success=1 retry=1 backoff=2
}

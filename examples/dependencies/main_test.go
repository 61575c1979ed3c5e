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
	if err := mainErr(context.Background(), "examples:welcome", slog.LevelWarn); err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// Redis: embedded miniredis (set REDIS_URL to use a real Redis)
	// mail to ada@example.com: welcome aboard
	// mail to bob@example.com: welcome aboard
	// succeeded=2 dead=1 (u404 has no email)
}

// Package exampleredis connects the example programs to Redis: REDIS_URL
// when it is set, else an embedded miniredis, so that the examples run on a
// machine with nothing but Go.
package exampleredis

import (
	"fmt"
	"os"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Connect opens REDIS_URL, or an embedded miniredis when it is unset. It
// answers the client, a description of where it points, and a function
// that closes both.
func Connect() (rdb *redis.Client, where string, closeFn func(), err error) {
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		return rdb, opts.Addr, func() { rdb.Close() }, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, err
	}
	rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
	return rdb, "embedded miniredis (set REDIS_URL to use a real Redis)", func() { rdb.Close(); m.Close() }, nil
}

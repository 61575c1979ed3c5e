// Package mqtest helps the tests of code that uses package mq: a client on
// an embedded Redis of its own ([New]), what a queue holds as the library
// reads it ([Enqueued], [RequireEnqueued]), and its messages run through a
// handler synchronously, on the caller's goroutine, with each outcome
// recorded ([Drain]).
//
// The embedded Redis is miniredis: quick, and enough for a test of the
// code around a queue, but not a proof of the queue's own behaviour under
// faults, which this module's tests check on a real redis-server.
package mqtest

import (
	"log/slog"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// New returns a client on a fresh embedded Redis of its own, with the
// default config but that it logs nothing. The client, its Redis
// connection and the server are closed when the test ends (t.Cleanup);
// the client's workers are stopped then.
func New(t testing.TB) *mq.Client {
	t.Helper()
	return NewWith(t, nil)
}

// NewWith is New with the client's config (a codec, the cluster layout).
// The client logs nothing unless cfg sets a Logger.
func NewWith(t testing.TB, cfg *mq.Config) *mq.Client {
	t.Helper()
	var c0 mq.Config
	if cfg != nil {
		c0 = *cfg
	}
	if c0.Logger == nil {
		c0.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := miniredis.Run()
	if err != nil {
		t.Fatalf("mqtest: start embedded redis: %v", err)
	}
	t.Cleanup(srv.Close)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := mq.New(rdb, &c0)
	if err != nil {
		t.Fatalf("mqtest: new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

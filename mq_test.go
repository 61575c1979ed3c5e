package mq

import (
	"context"
	"flag"
	"runtime"
	"strconv"
	"testing"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Most tests here spend their time waiting: for Redis, for a lock or a
	// backoff to run out, for a failover. By default go test runs only
	// GOMAXPROCS parallel tests at once, which leaves the CPUs idle most of
	// the time; run more, unless -parallel says otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", strconv.Itoa(3*runtime.GOMAXPROCS(0))); err != nil {
			panic(err)
		}
	}
	// The shared clusters stop before goleak looks for leaked goroutines.
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// The servers a test runs on, and the helpers that wait, are
// internal/queuetest's: written once for this package and
// internal/protocol.

// nopHandler answers success without looking at the message.
var nopHandler = HandlerFunc(func(context.Context, *Message) error { return nil })

// newClient returns a Client on the server, with logs going to the test
// log.
func newClient(t *testing.T, s *queuetest.Server, cfg *Config) *Client {
	t.Helper()
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Cluster = s.Cluster
	if c.Logger == nil {
		c.Logger = testLogger(t)
	}
	cl, err := New(s.RDB, &c)
	require.NoError(t, err)
	return cl
}

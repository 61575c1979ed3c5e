package protocol

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The shared clusters stop before goleak looks for leaked goroutines.
	goleak.VerifyTestMain(redistest.WithShared(m))
}

// server is one Redis a test runs the scripts on: a miniredis (fast, time
// under control), a throwaway real redis-server (the truth for Lua), or a
// throwaway Redis Cluster, whose keys are written in cluster layout.
type server struct {
	rdb     redis.UniversalClient
	cluster bool
	mini    *miniredis.Miniredis // only on miniredis
	real    *redistest.Server    // only on a single redis-server
}

// onEachServer runs fn on each kind of server (queuetest.OnEachServer),
// as parallel subtests; the caller must not call t.Parallel.
func onEachServer(t *testing.T, fn func(t *testing.T, s *server)) {
	t.Helper()
	queuetest.OnEachServer(t, func(t *testing.T, qs *queuetest.Server) {
		fn(t, &server{rdb: qs.RDB, cluster: qs.Cluster, mini: qs.Mini, real: qs.Real})
	})
}

func newRealServer(t *testing.T, args ...string) *server {
	qs := queuetest.RealServer(t, args...)
	return &server{rdb: qs.RDB, real: qs.Real}
}

// keys returns every key of queue q in the server's layout, in the
// scripts' order.
func (s *server) keys(q string) []string { return keys.All(q, s.cluster) }

// key names one key of queue q, in the server's layout.
func (s *server) key(q string, i keys.Index) string { return keys.Key(q, s.cluster, i) }

// now is the server's clock in Unix milliseconds.
func (s *server) now(t *testing.T) int64 {
	t.Helper()
	tm, err := s.rdb.Time(context.Background()).Result()
	require.NoError(t, err)
	return tm.UnixMilli()
}

// queueName is a queue name unique to the test.
func queueName(t *testing.T) string {
	r := strings.NewReplacer("/", ".", " ", "_", "*", "", "?", "", "[", "", "]", "", "{", "", "}", "", "\\", "")
	return "test:" + r.Replace(t.Name())
}

// waitFor polls cond until it holds (queuetest.WaitFor).
var waitFor = queuetest.WaitFor

// randomToken is a call token or poller id, as the client draws them.
func randomToken() string { return strconv.FormatUint(rand.Uint64()|1<<63, 16) }

// enqueue enqueues one message with data (formatted with %v) in a call of
// its own, as the client's Enqueue does; m may be nil for a random id.
func enqueue(ctx context.Context, s *server, q string, data any, m *EnqueueMessage) (Code, error) {
	msg := EnqueueMessage{ID: randomToken()}
	if m != nil {
		msg = *m
	}
	msg.Data = []byte(fmt.Sprint(data))
	a := Enqueue(ctx, s.rdb, s.keys(q), EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, Messages: []EnqueueMessage{msg}})
	if a.Err != nil {
		return "", a.Err
	}
	return a.Codes[0], nil
}

// mustEnqueue is enqueue for a message the queue must take.
func mustEnqueue(t *testing.T, s *server, q string, data any, m *EnqueueMessage) {
	t.Helper()
	code, err := enqueue(context.Background(), s, q, data, m)
	require.NoError(t, err)
	require.Contains(t, []Code{Added, Updated}, code)
}

// poll is one poll call by a poller of its own.
func poll(ctx context.Context, s *server, q string, a PollArgs) (PollReply, error) {
	a.Poller, a.Seq, a.Confirmed = randomToken(), 1, 0
	return Poll(ctx, s.rdb, s.keys(q), a)
}

// complete records outcomes in one call and answers, per completion,
// whether it took effect.
// complete records outcomes as a worker with the tests' lock time does,
// in a call that takes no steps.
func complete(ctx context.Context, s *server, q string, cs []Completion) ([]bool, error) {
	r, err := poll(ctx, s, q, PollArgs{LockTime: testLockMS * time.Millisecond, Completions: cs})
	return r.Recorded, err
}

// messageStatus is the status name of one message, "" for none.
func messageStatus(ctx context.Context, s *server, q, id string) (string, error) {
	_, infos, err := ReadMessages(ctx, s.rdb, s.keys(q), "", []string{id})
	if err != nil {
		return "", err
	}
	return infos[0].Status, nil
}

// statusOf is messageStatus that must succeed.
func statusOf(t *testing.T, s *server, q, id string) string {
	t.Helper()
	st, err := messageStatus(context.Background(), s, q, id)
	require.NoError(t, err)
	return st
}

// The status names of docs/protocol.md §2, as the scripts answer them.
const (
	StatusNone              = ""
	StatusQueued            = "queued"
	StatusQueuedWithBackoff = "queued-with-backoff"
	StatusLocked            = "locked"
	StatusLockedWithRequeue = "locked-with-requeue"
	StatusDoneAwaitingGC    = "done-awaiting-gc"
	StatusDoneWithBackoff   = "done-with-backoff"
	StatusDoneWithRequeue   = "done-with-requeue"
)

package mq

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Heartbeat settings of the tests: a killed worker's entry runs out
// within a second.
const (
	testHeartbeatEvery = 50 * time.Millisecond
	testHeartbeatTTL   = time.Second
)

// workersOf lists q's live workers by id.
func workersOf(t *testing.T, c *Client, q string) map[string]LiveWorker {
	t.Helper()
	ws, err := c.Inspector().Workers(context.Background(), q)
	require.NoError(t, err)
	m := map[string]LiveWorker{}
	for _, w := range ws {
		m[w.ID] = w
	}
	return m
}

// TestWorkersAcrossProcesses: a worker here and one in a child process
// are both listed, with what they say of themselves; the child, killed
// with SIGKILL, leaves the listing once its heartbeat runs out (and its
// entry is pruned from Redis); the worker here, stopped, leaves at once.
func TestWorkersAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHeartbeatProcess$")
	cmd.Env = append(os.Environ(), "MQ_HELPER_HEARTBEAT_REDIS="+s.Real.Addr, "MQ_HELPER_QUEUE="+q)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	childID := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "worker-id:"); ok {
				childID <- id
			}
		}
	}()

	// This process's worker's entry would run out only after a minute,
	// so that its leaving the listing within WaitFor's 30 s is its
	// removal by Stop or Close (the killed child's runs out in a second).
	const hereTTL = time.Minute
	here, err := c.StartWorker(t.Context(), q, &WorkerConfig{
		Handler:           nopHandler,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		heartbeatEvery:    testHeartbeatEvery,
		heartbeatTTL:      hereTTL,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = here.Close() })

	var child string
	select {
	case child = <-childID:
	case <-time.After(30 * time.Second):
		t.Fatal("the child process never started its worker")
	}
	require.NotEqual(t, here.ID(), child)
	queuetest.WaitFor(t, "both workers listed, each after a poll", func() bool {
		ws := workersOf(t, c, q)
		return len(ws) == 2 && !ws[child].LastPoll.IsZero() && !ws[here.ID()].LastPoll.IsZero()
	})
	ws := workersOf(t, c, q)
	mine, theirs := ws[here.ID()], ws[child]
	assert.Equal(t, os.Getpid(), mine.PID)
	assert.Equal(t, cmd.Process.Pid, theirs.PID)
	for i, lw := range []LiveWorker{mine, theirs} {
		ttl := []time.Duration{hereTTL, testHeartbeatTTL}[i]
		assert.Equal(t, q, lw.Queue)
		assert.Equal(t, hostname, lw.Host)
		assert.Equal(t, Version, lw.Version)
		assert.Equal(t, ttl, lw.Expires.Sub(lw.LastBeat), "expires a ttl after the beat")
		assert.False(t, lw.Started.After(lw.LastPoll), "started before its poll")
		assert.False(t, lw.LastPoll.After(lw.LastBeat), "polled before the beat that told it")
		assert.Zero(t, lw.HandlersBusy)
	}
	assert.Equal(t, 1, mine.HandlerThreads)
	assert.Equal(t, 1, mine.WorkerThreads)
	assert.Equal(t, 3, theirs.HandlerThreads)
	assert.Equal(t, 2, theirs.WorkerThreads)
	now, err := s.RDB.Time(context.Background()).Result()
	require.NoError(t, err)
	assert.WithinDuration(t, now, mine.LastBeat, 10*time.Second, "by the server's clock")
	out, err := json.Marshal(mine)
	require.NoError(t, err)
	assert.Contains(t, string(out), `"handler_threads":1`)
	assert.Contains(t, string(out), `"id":"`+here.ID()+`"`)

	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no chance to say goodbye
	queuetest.WaitFor(t, "the killed worker to leave the listing", func() bool {
		_, ok := workersOf(t, c, q)[child]
		return !ok
	})
	// That its entry is pruned from both keys is internal/protocol's
	// TestHeartbeat.
	assert.Contains(t, workersOf(t, c, q), here.ID(), "the live one stays")

	// A stopped or closed worker removes its entry as its run ends
	// (and no key is left behind: internal/protocol's TestHeartbeat).
	// Not always before Stop returns: the removal waits at most
	// closeGrace for Redis, and Close's whole stop as long, then go on
	// in the background; beside a yes hog and three other test
	// processes, the entry was still listed once Stop, and once Close,
	// had returned.
	require.NoError(t, here.Stop(context.Background()))
	queuetest.WaitFor(t, "the stopped worker to remove its entry", func() bool { return len(workersOf(t, c, q)) == 0 })

	// Started again, it is listed again, under the same id.
	require.NoError(t, here.Start(t.Context()))
	queuetest.WaitFor(t, "the restarted worker listed", func() bool {
		_, ok := workersOf(t, c, q)[here.ID()]
		return ok
	})
	require.NoError(t, here.Close())
	queuetest.WaitFor(t, "the closed worker to remove its entry", func() bool { return len(workersOf(t, c, q)) == 0 })
}

// TestHelperHeartbeatProcess is the child of TestWorkersAcrossProcesses:
// a worker that says its id, then runs until the process is killed.
func TestHelperHeartbeatProcess(t *testing.T) {
	addr := os.Getenv("MQ_HELPER_HEARTBEAT_REDIS")
	if addr == "" {
		t.Skip("run by TestWorkersAcrossProcesses")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	w, err := c.StartWorker(t.Context(), os.Getenv("MQ_HELPER_QUEUE"), &WorkerConfig{
		Handler:           nopHandler,
		WorkerThreads:     2,
		HandlerThreads:    3,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		heartbeatEvery:    testHeartbeatEvery,
		heartbeatTTL:      testHeartbeatTTL,
	})
	require.NoError(t, err)
	defer w.Close()
	fmt.Println("worker-id:" + w.ID())
	select {} // until killed
}

// TestWorkersHandlersBusy: the heartbeat tells how many handlers are
// busy, and an entry whose info does not parse is still listed.
func TestWorkersHandlersBusy(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	w, calls := startWorker(t, c, q, WorkerConfig{HandlerThreads: 3, heartbeatEvery: testHeartbeatEvery, heartbeatTTL: time.Minute},
		func(ctx context.Context, h handling) error {
			<-release
			return nil
		})
	enqueue(t, c, q, "a", nil)
	enqueue(t, c, q, "b", nil)
	next(t, calls)
	next(t, calls)
	queuetest.WaitFor(t, "two busy handlers in the heartbeat", func() bool { return workersOf(t, c, q)[w.ID()].HandlersBusy == 2 })
	once.Do(func() { close(release) })
	queuetest.WaitFor(t, "no busy handler, and both handled, in the heartbeat", func() bool {
		lw := workersOf(t, c, q)[w.ID()]
		return lw.HandlersBusy == 0 && lw.Handled == 2
	})
	lw := workersOf(t, c, q)[w.ID()]
	assert.Equal(t, 3, lw.HandlerThreads)
	assert.Zero(t, lw.Failed)
	assert.Equal(t, w.Stats().HandlingTime.P99, lw.HandlingP99, "the worker's own percentile")
	assert.Positive(t, lw.HandlingP50)

	_, err := protocol.Heartbeat(context.Background(), s.RDB, c.keys(q), "other", time.Minute, []byte("not json"))
	require.NoError(t, err)
	other, ok := workersOf(t, c, q)["other"]
	require.True(t, ok, "listed")
	assert.Equal(t, q, other.Queue)
	assert.False(t, other.Expires.IsZero())
	assert.Zero(t, other.PID)
}

// TestClearQueuesRemovesWorkers: the entry of a worker that died (its
// heartbeat not yet run out) goes with ClearQueues.
func TestClearQueuesRemovesWorkers(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		c := newClient(t, s, nil)
		q := queuetest.QueueName(t)
		_, err := protocol.Heartbeat(context.Background(), s.RDB, c.keys(q), "dead", time.Hour, []byte("{}"))
		require.NoError(t, err)
		require.Contains(t, workersOf(t, c, q), "dead", "listed for an hour")
		cleared, err := c.Inspector().ClearQueues(context.Background(), q)
		require.NoError(t, err)
		assert.Equal(t, []string{q}, cleared)
		assert.Empty(t, workersOf(t, c, q))
	})
}

// TestWorkersBadQueueName: the name is checked before any call.
func TestWorkersBadQueueName(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	c, err := New(rdb, nil)
	require.NoError(t, err)
	_, err = c.Inspector().Workers(context.Background(), "a*")
	assert.ErrorIs(t, err, ErrInvalidQueueName)
}

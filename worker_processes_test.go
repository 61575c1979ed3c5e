package mq

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkerProcesses: two worker processes on one queue (real Redis).
//
// Both processes take part by construction: each child's handlers hold
// their first message, and wait, until the parent has seen both children
// hold one (a line "started" from each), then the parent lets both go on
// (a line on their stdin). A child cannot take more than a few messages
// before then, so the other always finds some left.
func TestWorkerProcesses(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	outs := make([]*strings.Builder, 2)
	var stdins []io.WriteCloser
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range outs {
		outs[i] = &strings.Builder{}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$")
		cmd.Env = append(os.Environ(), "MQ_HELPER_REDIS="+s.Real.Addr, "MQ_HELPER_QUEUE="+q)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdins = append(stdins, stdin)
		require.NoError(t, cmd.Start())
		wg.Add(1)
		go func(out *strings.Builder) {
			defer wg.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				out.WriteString(sc.Text() + "\n")
				mu.Unlock()
			}
		}(outs[i])
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	reqs := make([]EnqueueRequest, 200)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprintf("id-%d", i)}}
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	started := func(i int) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(outs[i].String(), "started\n")
	}
	queuetest.WaitFor(t, "both processes to hold a message", func() bool { return started(0) && started(1) })
	for _, in := range stdins {
		_, err := io.WriteString(in, "go\n")
		require.NoError(t, err)
	}
	counts := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]int{}
		for _, o := range outs {
			for _, l := range strings.Fields(o.String()) {
				if id, ok := strings.CutPrefix(l, "handled:"); ok {
					m[id]++
				}
			}
		}
		return m
	}
	queuetest.WaitFor(t, "both processes to handle all", func() bool { return len(counts()) == 200 })
	queuetest.WaitFor(t, "the outcomes", func() bool {
		qc, err := c.Inspector().QueueCounts(context.Background(), q)
		require.NoError(t, err)
		return qc.Done == 200 || qc.Total == 0
	})
	for id, n := range counts() {
		assert.Equal(t, 1, n, "message %s", id)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, o := range outs {
		assert.Contains(t, o.String(), "handled:", "process %d handled messages", i)
	}
}

// helperGate holds a TestHelperWorkerProcess's handlers, as
// TestWorkerProcesses describes: the first to arrive says "started", and all
// wait for a line on stdin.
type helperGate struct {
	once, read sync.Once
	open       chan struct{}
}

func (g *helperGate) wait() {
	g.once.Do(func() { fmt.Println("started") })
	g.read.Do(func() {
		go func() {
			_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
			close(g.open)
		}()
	})
	<-g.open
}

// TestHelperWorkerProcess is the child of TestWorkerProcesses.
func TestHelperWorkerProcess(t *testing.T) {
	addr := os.Getenv("MQ_HELPER_REDIS")
	if addr == "" {
		t.Skip("run by TestWorkerProcesses")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	var mu sync.Mutex
	gate := &helperGate{open: make(chan struct{})}
	w, err := c.StartWorker(t.Context(), os.Getenv("MQ_HELPER_QUEUE"), &WorkerConfig{
		HandlerThreads:    4,
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			gate.wait()
			mu.Lock()
			fmt.Printf("handled:%s\n", m.ID)
			mu.Unlock()
			return nil
		}),
	})
	require.NoError(t, err)
	defer w.Close()
	select {} // until killed
}

// TestWorkerSurvivesRedisRestart: Redis stopped for seconds under a running
// worker (real server with persistence); the worker resumes by itself and
// nothing is lost.
func TestWorkerSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	w, ev := startSubscribed(t, c, q, &WorkerConfig{
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			mu.Lock()
			seen[m.ID] = true
			mu.Unlock()
			return nil
		}),
	})
	enqueue(t, c, q, "before", &EnqueueOptions{MessageID: "before"})
	assert.Equal(t, OutcomeSucceeded, waitHandled(t, ev, "before", 1))

	s.Real.Kill(t)
	waitKind(t, ev, EventPollFailed, 1)
	time.Sleep(3 * time.Second) // the outage itself
	s.Real.Restart(t)

	for i := range 20 {
		var err error
		for range 50 { // the client reconnects on its own; an enqueue may meet the old connection
			if _, err = c.Enqueue(ctx, q, i, &EnqueueOptions{MessageID: fmt.Sprint(i)}); err == nil {
				break
			}
		}
		require.NoError(t, err)
	}
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	waitAllSucceeded(t, ev, ids...)
	mu.Lock()
	assert.Len(t, seen, 21)
	mu.Unlock()
	assert.True(t, w.Info().Running)
}

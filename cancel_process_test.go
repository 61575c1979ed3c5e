package mq

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCancelAcrossProcesses: messages handled by a worker in another
// process, cancelled from this one. Each handler's context ends with the
// cause ErrCancelled, its outcome (a late success) is recorded as
// cancelled, and nothing is retried or buried. It prints the time from
// Cancel's return to the handler's context ending (both read off this
// machine's wall clock), the measure: with MQ_CANCEL_TRIALS=200 it
// runs 200 trials and, with MQ_CANCEL_ASSERT_P99 set, fails when the p99
// is 100 ms or more (a long-mode check, never a unit test's threshold).
func TestCancelAcrossProcesses(t *testing.T) {
	t.Parallel()
	trials := 5
	if n, err := strconv.Atoi(os.Getenv("MQ_CANCEL_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCancelProcess$")
	cmd.Env = append(os.Environ(), "MQ_HELPER_REDIS="+s.Real.Addr, "MQ_HELPER_QUEUE="+q)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan []string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				lines <- f
			}
		}
		close(lines)
	}()
	// next waits for the child's next line of the given kind about id.
	next := func(kind, id string) []string {
		t.Helper()
		timeout := time.After(eventTimeout)
		for {
			select {
			case f, ok := <-lines:
				require.True(t, ok, "the child ended")
				if f[0] == kind && len(f) > 1 && f[1] == id {
					return f
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s %s", kind, id)
			}
		}
	}

	latencies := make([]time.Duration, 0, trials)
	for i := range trials {
		id := fmt.Sprintf("m%d", i)
		enqueue(t, c, q, i, &EnqueueOptions{MessageID: id})
		next("started", id)
		r, err := c.Cancel(ctx, q, id)
		returned := time.Now()
		require.NoError(t, err)
		require.Equal(t, CancelSignalled, r)
		ended := next("ended", id)
		assert.Equal(t, ErrCancelled.Error(), strings.Join(ended[3:], " "), "the handler's context cause")
		ns, err := strconv.ParseInt(ended[2], 10, 64)
		require.NoError(t, err)
		latencies = append(latencies, max(0, time.Unix(0, ns).Sub(returned)))
		assert.Equal(t, string(OutcomeCancelled), next("outcome", id)[2])
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	t.Logf("cancel across processes, %d trials: from Cancel's return to the handler's context ending: p50 %v, p90 %v, p99 %v, max %v",
		trials, pct(0.5), pct(0.9), pct(0.99), latencies[len(latencies)-1])
	if os.Getenv("MQ_CANCEL_ASSERT_P99") != "" {
		assert.Less(t, pct(0.99), 100*time.Millisecond, "p99")
	}

	n, err := s.RDB.HLen(ctx, s.Key(q, keys.Dead)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "no dead letter")
	n, err = s.RDB.HLen(ctx, s.Key(q, keys.Messages)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "every cancelled message collected")
}

// TestHelperCancelProcess is the child of TestCancelAcrossProcesses: a
// worker whose handlers hold each message until their context ends, then
// answer success; it prints "started <id>", "ended <id> <unix ns> <cause>"
// and "outcome <id> <outcome>".
func TestHelperCancelProcess(t *testing.T) {
	addr := os.Getenv("MQ_HELPER_REDIS")
	if addr == "" || !strings.Contains(os.Getenv("MQ_HELPER_QUEUE"), "TestCancelAcrossProcesses") {
		t.Skip("run by TestCancelAcrossProcesses")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	out := make(chan string, 64)
	w, err := c.NewWorker(os.Getenv("MQ_HELPER_QUEUE"), &WorkerConfig{
		LockTime:          time.Minute, // no renewal within a trial: the subscription ends them
		EndOfQueueBackoff: Constant(20 * time.Millisecond),
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			out <- "started " + m.ID
			<-ctx.Done()
			out <- fmt.Sprintf("ended %s %d %v", m.ID, time.Now().UnixNano(), context.Cause(ctx))
			return nil
		}),
	})
	require.NoError(t, err)
	events, stop := w.Subscribe(EventHandled)
	defer stop()
	require.NoError(t, w.Start(t.Context()))
	defer w.Close()
	go func() {
		for e := range events {
			out <- fmt.Sprintf("outcome %s %s", e.ID, e.Outcome)
		}
	}()
	for line := range out {
		fmt.Println(line)
	}
}

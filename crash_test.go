package mq

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Crashes: processes whose handling kills them (docs/protocol.md §11,
// quarantine) and workers killed with their messages (crash recovery with
// default options). Each child is this test binary run again, as
// TestHelperCrashingWorker.

// childOutput is what a child printed, line by line.
type childOutput struct {
	mu    sync.Mutex
	lines []string
}

// line answers the first line that starts with prefix, less the prefix.
func (o *childOutput) line(prefix string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.lines {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest, true
		}
	}
	return "", false
}

// crashChild runs TestHelperCrashingWorker in mode against queue q of s,
// and answers the child and a function that tells whether a line of its
// output starts with prefix.
func crashChild(t *testing.T, s *queuetest.Server, q, mode string) (*exec.Cmd, func(prefix string) bool) {
	cmd, out := crashChildOutput(t, s, q, mode)
	return cmd, func(prefix string) bool { _, ok := out.line(prefix); return ok }
}

func crashChildOutput(t *testing.T, s *queuetest.Server, q, mode string) (*exec.Cmd, *childOutput) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashingWorker$")
	cmd.Env = append(os.Environ(), "MQ_HELPER_REDIS="+s.Real.Addr, "MQ_HELPER_QUEUE="+q, "MQ_HELPER_MODE="+mode)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	out := &childOutput{}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.mu.Lock()
			out.lines = append(out.lines, sc.Text())
			out.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

// TestPoisonQuarantined: a message whose handling kills its process is
// handed out QuarantineAfter times, then buried as quarantined by the
// next poll, and never handed out again.
func TestPoisonQuarantined(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	enqueue(t, c, q, "poison", &EnqueueOptions{MessageID: "poison"})
	for i := range 2 {
		cmd, _ := crashChild(t, s, q, "poison")
		err := cmd.Wait()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "the handling %d killed its process", i+1)
		assert.Equal(t, 3, exit.ExitCode())
	}
	// The third process's poll buries it instead of handing it out.
	_, saw := crashChild(t, s, q, "poison")
	queuetest.WaitFor(t, "the message quarantined", func() bool {
		_, err := c.Inspector().DeadLetter(ctx, q, "poison")
		return err == nil
	})
	d, err := c.Inspector().DeadLetter(ctx, q, "poison")
	require.NoError(t, err)
	assert.Equal(t, OutcomeQuarantined, d.Reason)
	assert.Equal(t, int64(2), d.Attempts)
	assert.Equal(t, StatusNone, statusOf(t, c, q, "poison"), "out of the queue")
	assert.False(t, saw("handling:"), "the third process never handled it")
}

// TestKilledWorkerRecoveredWithDefaults: with default options, the
// messages of a killed worker, prefetched ones included, are handed out
// again once its locks run out (DefaultLockTime), and each is handled
// once more.
func TestKilledWorkerRecoveredWithDefaults(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	const n = 10
	cmd, saw := crashChild(t, s, q, "hold")
	// Quick handlings first, until the child prefetches (a fixed number
	// of them left it off on a loaded machine: see warmUp).
	for i := 0; !saw("prefetching"); i++ {
		require.Less(t, i, 1000, "the child never prefetched")
		enqueue(t, c, q, i, &EnqueueOptions{MessageID: fmt.Sprintf("quick-%d", i)})
		queuetest.WaitFor(t, "the quick one handled", func() bool {
			counts, err := c.Inspector().QueueCounts(context.Background(), q)
			require.NoError(t, err)
			return counts.Total == 0
		})
	}
	reqs := make([]EnqueueRequest, n)
	for i := range reqs {
		reqs[i] = EnqueueRequest{Message: i, Options: &EnqueueOptions{MessageID: fmt.Sprint(i)}}
	}
	_, err := c.EnqueueMany(context.Background(), q, reqs...)
	require.NoError(t, err)
	queuetest.WaitFor(t, "the child to hold messages", func() bool { return saw("holding:") })
	queuetest.WaitFor(t, "the child to take every message, most of them prefetched", func() bool {
		counts, err := c.Inspector().QueueCounts(context.Background(), q)
		require.NoError(t, err)
		return counts.Locked == n
	})
	require.NoError(t, cmd.Process.Kill())
	killed := time.Now()

	var mu sync.Mutex
	attempts := map[string]int{}
	var w *Worker
	w, err = c.StartWorker(t.Context(), q, &WorkerConfig{Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
		mu.Lock()
		attempts[m.ID] = m.Attempt
		mu.Unlock()
		return nil
	})})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	bound := DefaultLockTime + 15*time.Second // the lock, and room for a busy machine
	for {
		mu.Lock()
		got := len(attempts)
		mu.Unlock()
		if got == n {
			break
		}
		require.Less(t, time.Since(killed), bound, "handled again within the lock time: %d of %d", got, n)
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, a := range attempts {
		assert.Equal(t, 2, a, "message %s: handed out once before, to the killed worker", id)
	}
}

// TestPauseAndDeleteAcrossProcesses: a pause made in this process holds
// back a worker in another until the resume, and a delete of a message
// that worker holds fences its handling off (its renewal finds the lock
// lost and cancels it).
func TestPauseAndDeleteAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	serverMS := func() int64 {
		tm, err := s.RDB.Time(ctx).Result()
		require.NoError(t, err)
		return tm.UnixMilli()
	}
	_, out := crashChildOutput(t, s, q, "serve")
	saw := func(prefix string) bool { _, ok := out.line(prefix); return ok }
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "hold-1"})
	queuetest.WaitFor(t, "the other process to hold its message", func() bool { return saw("holding:hold-1") })

	paused, err := c.Inspector().PauseQueue(ctx, q)
	require.NoError(t, err)
	require.True(t, paused)
	enqueue(t, c, q, "y", &EnqueueOptions{MessageID: "p1"})
	deleted, err := c.Inspector().DeleteMessage(ctx, q, "hold-1")
	require.NoError(t, err)
	require.True(t, deleted)
	queuetest.WaitFor(t, "the held handling cancelled", func() bool { return saw("cancelled:hold-1:" + ErrLockLost.Error()) })
	assert.Equal(t, StatusQueued, statusOf(t, c, q, "p1"), "paused: not handed out")

	p1, err := c.Inspector().Message(ctx, q, "p1")
	require.NoError(t, err)
	udt := p1.FirstEnqueued.UnixMilli()
	resumed := serverMS()
	_, err = c.Inspector().ResumeQueue(ctx, q)
	require.NoError(t, err)
	queuetest.WaitFor(t, "p1 handled after the resume", func() bool { return saw("handled:p1:") })
	ms, _ := out.line("handled:p1:")
	age, err := strconv.ParseInt(ms, 10, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, udt+age, resumed, "p1 handed out after the resume (server clock)")
	assert.Equal(t, StatusNone, statusOf(t, c, q, "hold-1"), "the fenced handling wrote nothing back")
}

// TestHelperCrashingWorker is the child of the tests above. In mode
// "poison" its handler kills its process (exit code 3); in mode "serve" it
// handles messages, printing their age, but holds those of ids "hold-*"
// until their context ends; in mode "hold" its
// handlers hold their messages (but those of ids "quick-*") until the
// process is killed. Both use the default options but QuarantineAfter (2),
// HandlerThreads (2) and, for "poison", LockTime.
func TestHelperCrashingWorker(t *testing.T) {
	addr := os.Getenv("MQ_HELPER_REDIS")
	if addr == "" || os.Getenv("MQ_HELPER_MODE") == "" {
		t.Skip("run by TestPoisonQuarantined and TestKilledWorkerRecoveredWithDefaults")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	cfg := &WorkerConfig{
		QuarantineAfter: 2,
		HandlerThreads:  2,
		Handler: HandlerFunc(func(ctx context.Context, m *Message) error {
			if os.Getenv("MQ_HELPER_MODE") == "poison" {
				fmt.Printf("handling:%s\n", m.ID)
				os.Exit(3)
			}
			if strings.HasPrefix(m.ID, "quick-") {
				return nil
			}
			if os.Getenv("MQ_HELPER_MODE") == "serve" && !strings.HasPrefix(m.ID, "hold-") {
				fmt.Printf("handled:%s:%d\n", m.ID, m.Age.Milliseconds())
				return nil
			}
			fmt.Printf("holding:%s\n", m.ID)
			<-ctx.Done()
			if os.Getenv("MQ_HELPER_MODE") == "serve" {
				fmt.Printf("cancelled:%s:%v\n", m.ID, context.Cause(ctx))
				return nil
			}
			select {} // until killed
		}),
	}
	switch os.Getenv("MQ_HELPER_MODE") {
	case "poison":
		cfg.LockTime = 200 * time.Millisecond // the next process need not wait long
	case "serve":
		cfg.LockTime = 600 * time.Millisecond // renewed every 200 ms
	}
	w, err := c.StartWorker(t.Context(), os.Getenv("MQ_HELPER_QUEUE"), cfg)
	require.NoError(t, err)
	defer w.Close()
	if os.Getenv("MQ_HELPER_MODE") == "hold" {
		// Tell the parent once quick handlings turned prefetching on.
		for !w.room.Prefetching() || w.room.Taken() != 0 {
			time.Sleep(5 * time.Millisecond)
		}
		fmt.Println("prefetching")
	}
	select {} // until killed, or a handling exits
}

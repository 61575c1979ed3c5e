package mq

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
)

// testLogger sends logs to the test's log, so they show only for failing
// tests (or with -v), until the test's cleanups run; later lines are
// dropped. A worker's goroutine may log after its test: Close waits at
// most closeGrace for Redis, and a flush in flight then fails later
// (Completer.flush, RecordFailed). testing marks a test done without a
// lock, so that the race detector catches a log that is not synchronised
// with the test's end: such a log failed every test running beside it.
func testLogger(t *testing.T) *slog.Logger {
	o := &testOutput{t: t}
	t.Cleanup(o.end)
	return slog.New(&testHandler{out: o})
}

// testOutput is a test's log until the test ends. Safe for concurrent
// use.
type testOutput struct {
	t     *testing.T
	mu    sync.Mutex
	ended bool
}

func (o *testOutput) log(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.ended {
		o.t.Log(line)
	}
}

func (o *testOutput) end() {
	o.mu.Lock()
	o.ended = true
	o.mu.Unlock()
}

type testHandler struct {
	out   *testOutput
	attrs []slog.Attr
}

func (h *testHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *testHandler) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	for _, a := range h.attrs {
		line += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.out.log(line)
	return nil
}

func (h *testHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testHandler{out: h.out, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }

// TestLoggerAfterTestEnds: a goroutine that logs on through the end of its
// test and of the test's parent, as a closed worker's may, races with
// nothing (run it with -race). While the lines went to the test's log,
// then to its parent's, testing's unlocked mark of the parent as done (a
// test with subtests) raced with them.
func TestLoggerAfterTestEnds(t *testing.T) {
	t.Parallel()
	var stop atomic.Bool
	done := make(chan struct{})
	t.Run("parent", func(t *testing.T) {
		t.Run("test", func(t *testing.T) {
			log := testLogger(t)
			go func() {
				defer close(done)
				for !stop.Load() {
					log.Debug("mq: a line from a goroutine the test did not wait for")
				}
			}()
		})
	})
	stop.Store(true)
	<-done
}

package mq

import (
	"context"
	"log/slog"
	"testing"
)

// testLogger sends logs to the test's log, so they show only for failing
// tests (or with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(&testHandler{t: t})
}

type testHandler struct {
	t     *testing.T
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
	defer func() { _ = recover() }() // a log after the test ended
	h.t.Log(line)
	return nil
}

func (h *testHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testHandler{t: h.t, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *testHandler) WithGroup(string) slog.Handler { return h }

package engine

import (
	"context"
	"sync"
	"time"
)

// HeartbeatConfig configures a worker's Heartbeat (docs/protocol.md §12).
type HeartbeatConfig struct {
	// ID is the worker's id, the key of its entry.
	ID string
	// Every is how often the worker beats, and how long one beat may wait
	// for Redis; TTL how long its entry lives after a beat.
	Every, TTL time.Duration
	// Info answers the entry's info at each beat.
	Info func() []byte
	// Failed is told of the first failed beat of a streak, Recovered of
	// the beat that ended it.
	Failed    func(err error)
	Recovered func()
	// Summary, if set, is called every SummaryEvery: the worker's summary
	// line, logged beside its heartbeat.
	SummaryEvery time.Duration
	Summary      func()
}

// Heartbeat keeps a running worker's entry in the queue's worker-info
// (Inspector.Workers), and calls its periodic summary, on a goroutine of
// its own from Start to Stop.
type Heartbeat struct {
	store Store
	cfg   HeartbeatConfig

	cancel context.CancelFunc
	done   chan struct{}
	// logMu is held by the beats while they report, and by Stop, so that
	// nothing is reported once Stop returned.
	logMu   sync.Mutex
	failing bool
}

// StartHeartbeat beats once at once, then every cfg.Every, until Stop.
// ctx's values serve the calls; its end does not stop the heartbeat.
func StartHeartbeat(ctx context.Context, store Store, cfg HeartbeatConfig) *Heartbeat {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Heartbeat{store: store, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.run(ctx)
	}()
	return h
}

// Stop ends the heartbeat without waiting for it: from its return on it
// reports and summarises nothing, though a beat in flight may still reach
// Redis (Done tells when it returned).
func (h *Heartbeat) Stop() {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	h.cancel()
}

// Done is closed once the heartbeat's goroutine returned.
func (h *Heartbeat) Done() <-chan struct{} { return h.done }

func (h *Heartbeat) run(ctx context.Context) {
	h.beat(ctx)
	beats := time.NewTicker(h.cfg.Every)
	defer beats.Stop()
	var summaries <-chan time.Time
	if h.cfg.SummaryEvery > 0 && h.cfg.Summary != nil {
		t := time.NewTicker(h.cfg.SummaryEvery)
		defer t.Stop()
		summaries = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-beats.C:
			h.beat(ctx)
		case <-summaries:
			h.reporting(ctx, h.cfg.Summary)
		}
	}
}

// reporting runs report, unless the heartbeat was stopped (ctx is its).
func (h *Heartbeat) reporting(ctx context.Context, report func()) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	if ctx.Err() == nil {
		report()
	}
}

// beat stores the worker's entry once, waiting at most one heartbeat
// interval for Redis. A beat in flight when ctx ends (the run ends) goes
// on, so that it cannot land after the entry's removal.
func (h *Heartbeat) beat(ctx context.Context) {
	info := h.cfg.Info()
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Every)
	defer cancel()
	err := h.store.Beat(callCtx, h.cfg.ID, h.cfg.TTL, info)
	// A failure as the run ends is none, and is not reported.
	h.reporting(ctx, func() {
		switch {
		case err != nil && !h.failing:
			h.failing = true
			h.cfg.Failed(err)
		case err == nil && h.failing:
			h.failing = false
			h.cfg.Recovered()
		}
	})
}

// Leave removes the worker's entry, within ctx; an entry it cannot remove
// runs out by itself.
func (h *Heartbeat) Leave(ctx context.Context) {
	_ = h.store.Gone(ctx, h.cfg.ID)
}

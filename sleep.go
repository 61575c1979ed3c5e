package mq

import (
	"context"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// sleepChunk is the longest single blocking call of an end-of-queue sleep
// a worker sleeps on its own connection. Between calls the worker checks
// whether it is stopping and whether messages are ready, so that Stop is
// prompt and a wake-up missed in a race is not missed for long.
const sleepChunk = time.Second

// minEndOfQueueSleep is the shortest end-of-queue sleep, whatever
// EndOfQueueBackoff says, so that an idle worker never polls in a hot loop.
const minEndOfQueueSleep = 10 * time.Millisecond

// sleep is the interruptible sleep of docs/protocol.md §5: until an
// enqueue moves the sleep sentinel onto the list the poll named, until the
// sleep's time is up, until alarm fires (the worker's own outcomes made
// something ready or due sooner), or until ctx ends. The workers of one
// client share the hub's blocking call where the server allows it
// (hub.go); otherwise each blocks on its own connection. asleep is called
// once the worker is blocked.
func (w *Worker) sleep(ctx context.Context, s *protocol.Step, alarm <-chan struct{}, asleep func()) {
	ks := w.c.keys(w.queue)
	from, to := protocol.SleepLists(ks, s)
	d := s.Sleep
	if !s.UntilDue {
		d = jitter(d)
	}
	if w.c.hub.Sleep(ctx, from, to, d, alarm, asleep) {
		return
	}
	if from != to {
		// Wake when the earliest message falls due, or on the alarm.
		// Redis ends a blocking call's timeout only when its event loop
		// next wakes, up to 1/hz (100 ms by default) late on an idle
		// server; moving the sentinel onto the list we block on ends it at
		// once, as an enqueue does.
		var due <-chan time.Time
		if s.UntilDue {
			t := time.NewTimer(d)
			defer t.Stop()
			due = t.C
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-due:
			case <-alarm:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
			w.nudge(ctx, to, from)
		}()
	}
	asleep()
	deadline := time.Now().Add(d)
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		woken, err := within(w.c, ctx, func(ctx context.Context) (bool, error) {
			return protocol.BlockingMove(ctx, w.c.rdb, from, to, min(left, sleepChunk))
		})
		if woken || err != nil {
			return // woken, or Redis trouble: let the next poll report it
		}
		if from == to {
			continue // paused: what is ready waits for the resume
		}
		ready, err := within(w.c, ctx, func(ctx context.Context) (bool, error) {
			return protocol.HasReady(ctx, w.c.rdb, ks)
		})
		if err != nil || ready {
			return
		}
	}
}

// nudge moves the sleep sentinel from one isleep list to the other, which
// wakes a worker blocked on the other (this one, or another of the queue's
// sleepers, which will find the same due message).
func (w *Worker) nudge(ctx context.Context, from, to string) {
	if ctx.Err() != nil {
		return // stopping: nobody needs waking
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _ = within(w.c, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, protocol.Nudge(ctx, w.c.rdb, from, to)
	})
}

// alarm wakes a worker's sleeping polling loops when the worker's own
// outcomes, recorded while they slept, made a message ready or due sooner
// than their sleeps end: they poll again, and sleep until it is due.
// Another process's sleepers learn of it through Redis (the outcome moves
// the sleep sentinel, docs/protocol.md §6).
type alarm struct {
	mu sync.Mutex
	ch chan struct{}
}

func newAlarm() *alarm { return &alarm{ch: make(chan struct{})} }

// wait answers a channel closed by the next ring.
func (a *alarm) wait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ch
}

// ring wakes every loop that took its channel from wait before.
func (a *alarm) ring() {
	a.mu.Lock()
	defer a.mu.Unlock()
	close(a.ch)
	a.ch = make(chan struct{})
}

// sleepCtx sleeps for d or until ctx ends, and answers whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package mq

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// Scheduler defaults.
const (
	// DefaultScheduleCatchUp is how late a tick may be enqueued: ticks
	// missed by longer (no scheduler ran) are skipped.
	DefaultScheduleCatchUp = time.Minute
	// scheduleRefresh bounds a scheduler's sleep while the queue has
	// schedules, so that one set in another process is seen within it;
	// scheduleIdleRefresh while it has none. A change made through the
	// scheduler's own client wakes it at once.
	scheduleRefresh     = 2 * time.Second
	scheduleIdleRefresh = 10 * time.Second
	// unreadableDelay puts off the tick of a schedule whose spec a
	// scheduler cannot read, in ms.
	unreadableDelay = int64(time.Minute / time.Millisecond)
)

// SchedulerConfig configures a [Scheduler]. Every field has a default.
type SchedulerConfig struct {
	// CatchUp is how late a tick may still be enqueued, when no scheduler
	// ran at its time (all were stopped, or Redis was down): ticks missed
	// by up to CatchUp are enqueued late, each once, in order; older ones
	// are skipped. Default: DefaultScheduleCatchUp (a minute). It should
	// be longer than a scheduler may be held up (a GC pause, a slow
	// Redis), or late ticks are skipped.
	CatchUp time.Duration

	// OnTick, if set, is called after each tick this scheduler took:
	// enqueued, or skipped (missed by more than CatchUp). It must not
	// block.
	OnTick func(Tick)
}

// Tick is a tick a scheduler took, as told to SchedulerConfig.OnTick and
// to a worker's Observer that is a [TickObserver].
type Tick struct {
	Queue, Schedule string
	// At is the tick's time; Skipped tells that it was missed by more
	// than the catch-up bound and skipped, with the ticks after it up to
	// the bound, instead of enqueued.
	At      time.Time
	Skipped bool
}

// TickObserver is told of each tick a worker's scheduler takes, when the
// worker's WorkerConfig.Observer is one too. ObserveTick must not block.
type TickObserver interface {
	ObserveTick(Tick)
}

// Scheduler enqueues the ticks of a queue's schedules (Inspector.
// SetSchedule) as they come due. Any number may run, in any number of
// processes: each tick is enqueued exactly once, by whichever scheduler
// takes it first (a compare and set in Redis, docs/protocol.md §15). A
// [Worker] runs one for its queue unless WorkerConfig.NoScheduler is set;
// a Scheduler runs one without handling anything.
//
// Idle, it sleeps until the first tick due, reading the queue's earliest
// tick every 2 s at most, to see changes made by other processes (every
// 10 s while the queue has no schedule): one script call, three commands.
type Scheduler struct {
	c     *Client
	queue string
	cfg   SchedulerConfig
	log   *slog.Logger

	enqueued, skipped atomic.Int64
}

// NewScheduler returns a scheduler of queue's schedules; Run runs it.
func (c *Client) NewScheduler(queue string, cfg *SchedulerConfig) (*Scheduler, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	var sc SchedulerConfig
	if cfg != nil {
		sc = *cfg
	}
	if sc.CatchUp == 0 {
		sc.CatchUp = DefaultScheduleCatchUp
	}
	if sc.CatchUp < 0 {
		return nil, fmt.Errorf("%w: CatchUp %v is negative", ErrInvalidOption, sc.CatchUp)
	}
	return &Scheduler{c: c, queue: queue, cfg: sc, log: c.log.With(slog.String("queue", queue))}, nil
}

// SchedulerStats counts the ticks a scheduler took.
type SchedulerStats struct {
	// Enqueued counts the ticks it enqueued; Skipped the steps in which
	// it skipped ticks missed by more than CatchUp (one step skips every
	// such tick of a schedule at once).
	Enqueued int64 `json:"enqueued"`
	Skipped  int64 `json:"skipped"`
}

// Stats returns the counts of ticks the scheduler took.
func (s *Scheduler) Stats() SchedulerStats {
	return SchedulerStats{Enqueued: s.enqueued.Load(), Skipped: s.skipped.Load()}
}

// Run enqueues the queue's ticks until ctx ends, and returns ctx's error.
// Errors of Redis are logged, and the scheduler tries again every 2 s.
func (s *Scheduler) Run(ctx context.Context) error {
	failing := false
	for {
		wake := s.c.schedWake.wait()
		d, err := s.step(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if !failing {
				s.log.Warn("mq: scheduler failed; trying again every 2 s", slog.Any("error", err))
			}
			failing, d = true, scheduleRefresh
		} else if failing {
			failing = false
			s.log.Info("mq: scheduler works again")
		}
		if d <= 0 {
			continue
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// step reads the earliest tick and takes it if due, and answers how long
// to sleep before the next step.
func (s *Scheduler) step(ctx context.Context) (time.Duration, error) {
	sk := s.c.scheduleKeys(s.queue)
	now, first, ok, err := protocol.PeekSchedule(ctx, s.c.rdb, sk)
	if err != nil {
		return 0, err
	}
	if !ok {
		return scheduleIdleRefresh, nil
	}
	if first.Next > now {
		return min(time.Duration(first.Next-now)*time.Millisecond, scheduleRefresh), nil
	}
	t, err := s.tick(first, now)
	if err != nil {
		// A spec this process cannot read (a zone its tzdata lacks, a
		// spec of a later version) must not hold up the schedules behind
		// it: its tick is put off by a minute, for a scheduler that can
		// read it to take, or for this one to try again.
		s.log.Error("mq: schedule unreadable; its tick is put off by a minute",
			slog.String("schedule", first.Name), slog.Any("error", err))
		t = protocol.Tick{Name: first.Name, Spec: first.Spec, At: first.Next, Next: now + unreadableDelay}
		if _, err := protocol.RunTick(ctx, s.c.rdb, sk, s.c.keys(s.queue), t); err != nil {
			return 0, err
		}
		return 0, nil
	}
	took, err := protocol.RunTick(ctx, s.c.rdb, sk, s.c.keys(s.queue), t)
	if err != nil {
		return 0, err
	}
	if took {
		at := time.UnixMilli(t.At)
		if t.Enqueue {
			s.enqueued.Add(1)
			s.log.Debug("mq: schedule ticked", slog.String("schedule", t.Name), slog.Time("at", at))
		} else {
			s.skipped.Add(1)
			s.log.Warn("mq: schedule's ticks skipped, missed by more than the catch-up bound",
				slog.String("schedule", t.Name), slog.Time("from", at), slog.Time("until", time.UnixMilli(t.Next)),
				slog.Duration("catch_up", s.cfg.CatchUp))
		}
		if s.cfg.OnTick != nil {
			s.cfg.OnTick(Tick{Queue: s.queue, Schedule: t.Name, At: at, Skipped: !t.Enqueue})
		}
	}
	return 0, nil
}

// tick makes the call that takes the due tick of e, at server time now:
// the tick is enqueued if it is at most CatchUp late, and the next tick
// is the one after it; a tick later than that is skipped, and the next
// tick is the first that is not.
func (s *Scheduler) tick(e protocol.ScheduleEntry, now int64) (protocol.Tick, error) {
	t := protocol.Tick{Name: e.Name, Spec: e.Spec, At: e.Next}
	var spec scheduleSpec
	if err := json.Unmarshal([]byte(e.Spec), &spec); err != nil {
		return t, fmt.Errorf("%w: schedule %q: %v", ErrUnexpectedReply, e.Name, err)
	}
	tk, err := spec.ticker()
	if err != nil {
		return t, fmt.Errorf("schedule %q: %w", e.Name, err)
	}
	oldest := now - protocol.MS(s.cfg.CatchUp)
	if t.At >= oldest {
		t.Enqueue = true
		t.Next = tk.after(t.At)
	} else {
		t.Next = tk.after(oldest - 1)
	}
	if t.Next == 0 {
		// A cron expression with no tick left (robfig/cron looks five
		// years ahead): look again in a year.
		t.Next = now + int64(365*24*time.Hour/time.Millisecond)
	}
	if t.Enqueue {
		meta, err := encodeMetadata(spec.Meta)
		if err != nil {
			return t, err
		}
		t.ID, t.Content, t.Meta, t.LockTime = tickID(e.Name, t.At), string(spec.Content), string(meta), spec.LockMS
	}
	return t, nil
}

// wakeup wakes every waiter at once: wait answers a channel that the next
// wake closes.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *wakeup) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// schedulesChanged wakes the client's schedulers, to read the earliest
// tick again.
func (c *Client) schedulesChanged() { c.schedWake.wake() }

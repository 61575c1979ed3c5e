package engine

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
)

// The sleep hub. A sleeping worker blocks on its queue's empty isleep list
// until an enqueue moves the sleep sentinel there (docs/protocol.md §5).
// Blocking on Redis holds a pooled connection, so a hundred idle workers
// of a hundred queues sharing one client would hold a hundred connections
// and starve the client's other calls. Instead, the workers of one client
// sleep on one connection: the hub blocks with BLMPOP on the lists of
// every sleeping worker at once, and when an enqueue moves a sentinel into
// one of them, it moves the sentinel on to the other list, as each
// worker's BLMOVE would have, and wakes one worker sleeping on it. A
// worker's sleep time itself is kept by a local timer, to the millisecond.
//
// Which way a client's workers sleep is decided once, by a probe before
// the first sleep: a client whose server lacks BLMPOP (before Redis 7, or
// miniredis) or whose ACL user may not run it keeps one blocking call per
// sleeping worker (Sleep answers false), as does a client in cluster mode,
// which has no hub (BLMPOP takes its keys in one slot). The methods are
// safe for concurrent use, and on a nil *Hub, which never sleeps.

// hubPoll is how long one BLMPOP waits at most; the hub then looks again
// at who sleeps.
const hubPoll = time.Second

// Call runs one Redis call of the hub within ctx's deadline, however the
// Redis client keeps deadlines (the root package's within).
type Call func(ctx context.Context, call func(context.Context) error) error

// The hub's modes: not yet probed, in use, not usable.
const (
	hubUnknown int32 = iota
	hubOn
	hubOff
)

type Hub struct {
	rdb  protocol.Sleeper
	call Call
	log  *slog.Logger
	// kick is the hub's own list, which BLMPOP watches too: a worker that
	// starts sleeping on a list the hub's call does not watch pushes to
	// it, so that the hub calls again with that list; Close pushes to it
	// to end the call in flight.
	kick string

	mode    atomic.Int32 // hubUnknown, hubOn, hubOff
	probeMu sync.Mutex   // one probe at a time

	ctx    context.Context // ends the loop: cancelled by close
	cancel context.CancelFunc

	mu       sync.Mutex
	sleepers map[string][]*hubSleeper // by the list they block on
	partner  map[string]string        // a list -> where its sentinel goes
	watching map[string]bool          // the lists of the call in flight
	running  bool
	loopDone chan struct{} // closed when the running loop returns
	closed   bool
}

// hubSleeper is one worker's sleep on the hub.
type hubSleeper struct {
	woken  chan struct{}
	asleep func() // told once the hub's call watches its list
	told   bool
}

// NewHub returns the sleep hub of one client, not yet running: the first
// Sleep probes the server and starts it, Close ends it. kick is the hub's
// own list, a key of its own.
func NewHub(rdb protocol.Sleeper, call Call, log *slog.Logger, kick string) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		rdb:      rdb,
		call:     call,
		log:      log,
		kick:     kick,
		ctx:      ctx,
		cancel:   cancel,
		sleepers: map[string][]*hubSleeper{},
		partner:  map[string]string{},
		watching: map[string]bool{},
	}
}

// usable tells whether the client's workers sleep on the hub, probing the
// server the first time. A probe that cannot tell (Redis trouble) decides
// nothing: the caller sleeps on its own this time, and the next asks again.
func (h *Hub) Usable(ctx context.Context) bool {
	if h == nil {
		return false
	}
	switch h.mode.Load() {
	case hubOn:
		return true
	case hubOff:
		return false
	}
	h.probeMu.Lock()
	defer h.probeMu.Unlock()
	if m := h.mode.Load(); m != hubUnknown {
		return m == hubOn
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := h.call(ctx, func(ctx context.Context) error { return protocol.ProbeHub(ctx, h.rdb, h.kick) })
	switch {
	case err == nil:
		h.mode.Store(hubOn)
		return true
	case protocol.Unsupported(err):
		h.log.Debug("mq: sleeping workers block on their own connections", "reason", err.Error())
		h.mode.Store(hubOff)
	}
	return false
}

// sleep sleeps for d, until woken through list from (whose sentinel goes
// to to; from == to for a list whose element wakes every sleeper, and
// stays), until alarm fires, or until ctx ends, and answers whether it
// did; false when the client's workers do not sleep on the hub, and the
// caller must sleep on its own. asleep is called once the hub's blocking
// call watches from.
func (h *Hub) Sleep(ctx context.Context, from, to string, d time.Duration, alarm <-chan struct{}, asleep func()) bool {
	if !h.Usable(ctx) {
		return false
	}
	s := &hubSleeper{woken: make(chan struct{}, 1), asleep: asleep}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	h.sleepers[from] = append(h.sleepers[from], s)
	h.partner[from] = to
	kick := h.running && !h.watching[from]
	if !h.running {
		h.running = true
		h.loopDone = make(chan struct{})
		go h.loop(h.loopDone)
	}
	h.mu.Unlock()
	defer h.leave(from, s)
	if kick {
		h.kickCall(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.woken:
	case <-t.C:
	case <-alarm:
	case <-ctx.Done():
	}
	return true
}

func (h *Hub) leave(from string, s *hubSleeper) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ss := slices.DeleteFunc(h.sleepers[from], func(x *hubSleeper) bool { return x == s })
	if len(ss) == 0 {
		delete(h.sleepers, from)
	} else {
		h.sleepers[from] = ss
	}
}

func (h *Hub) kickCall(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = h.call(ctx, func(ctx context.Context) error { return protocol.HubKick(ctx, h.rdb, h.kick) })
}

// wake wakes sleepers. Called with h.mu held.
func wake(ss []*hubSleeper) {
	for _, s := range ss {
		select {
		case s.woken <- struct{}{}:
		default:
		}
	}
}

// wakeAll wakes every sleeper. Called with h.mu held.
func (h *Hub) wakeAll() {
	for _, ss := range h.sleepers {
		wake(ss)
	}
}

// loop is the hub's goroutine: it runs while anyone sleeps, until close.
func (h *Hub) loop(done chan struct{}) {
	defer close(done)
	ctx := h.ctx
	failures := 0
	for {
		h.mu.Lock()
		if len(h.sleepers) == 0 || ctx.Err() != nil {
			h.wakeAll()
			h.running = false
			clear(h.watching)
			h.mu.Unlock()
			// Kicks nobody took (the hub's list is its own).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = h.call(cctx, func(ctx context.Context) error { return protocol.HubClear(ctx, h.rdb, h.kick) })
			cancel()
			return
		}
		lists := make([]string, 0, len(h.sleepers)+1)
		var told []func()
		clear(h.watching)
		for from, ss := range h.sleepers {
			lists = append(lists, from)
			h.watching[from] = true
			for _, s := range ss {
				if !s.told {
					s.told = true
					told = append(told, s.asleep)
				}
			}
		}
		h.mu.Unlock()
		slices.Sort(lists)
		lists = append(lists, h.kick)
		for _, f := range told {
			if f != nil {
				f()
			}
		}

		key, popped, ok, err := protocol.HubPop(ctx, h.rdb, hubPoll, lists)
		switch {
		case err == nil && !ok:
			failures = 0
			continue
		case err != nil && ctx.Err() != nil:
			continue // closing
		case err != nil && protocol.Unsupported(err):
			// The probe said yes: the ACL changed since, say. Wake the
			// sleepers, who sleep on their own from now on.
			h.log.Warn("mq: the sleep hub's blocking call is refused now; sleeping workers block on their own connections",
				"reason", err.Error())
			h.mode.Store(hubOff)
			h.mu.Lock()
			h.wakeAll()
			h.mu.Unlock()
			continue
		case err != nil:
			// Redis trouble: wake the sleepers, whose polls report it,
			// and try again after a pause.
			h.mu.Lock()
			h.wakeAll()
			h.mu.Unlock()
			failures++
			t := time.NewTimer(min(time.Second, 10*time.Millisecond<<min(failures, 7)))
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		failures = 0
		if key == h.kick {
			continue
		}
		h.mu.Lock()
		ss, to := h.sleepers[key], h.partner[key]
		var woken []*hubSleeper
		switch {
		case len(ss) == 0:
		case to == key:
			// An element that wakes every sleeper and stays (a resume):
			// they all leave the list now.
			woken = ss
			delete(h.sleepers, key)
		default:
			woken = []*hubSleeper{ss[0]}
			h.sleepers[key] = append(ss[1:], ss[0]) // the next wake goes to the next one
		}
		h.mu.Unlock()
		dest, back := to, false
		if len(woken) == 0 || to == key {
			// Nobody here sleeps on it any more, or it stays: give it back,
			// to wake a sleeper of another process; the next call leaves
			// the list out.
			dest, back = key, true
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = h.call(pctx, func(ctx context.Context) error { return protocol.HubPut(ctx, h.rdb, dest, popped, back) })
		cancel()
		h.mu.Lock()
		wake(woken)
		h.mu.Unlock()
	}
}

// close ends the hub: the sleepers wake, the call in flight is ended by a
// kick, and close returns once the hub's goroutine did. Sleeps after it
// are the workers' own.
func (h *Hub) Close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	h.cancel()
	running, done := h.running, h.loopDone
	h.mu.Unlock()
	if done == nil {
		return // never started
	}
	if running {
		h.kickCall(context.Background())
	}
	<-done // also when the loop is just returning
}

// Works tells whether the client's sleeping workers share the hub's one
// blocking call (probed, and found to work).
func (h *Hub) Works() bool { return h != nil && h.mode.Load() == hubOn }

// Running tells whether the hub's goroutine runs.
func (h *Hub) Running() bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running
}

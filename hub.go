package mq

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/uuid"
	"github.com/redis/go-redis/v9"
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
// BLMPOP takes its keys in one slot, so a client in cluster mode keeps one
// blocking call per sleeping worker, as does a client whose server lacks
// BLMPOP (before Redis 7) or whose ACL user may not run it: the hub is
// then broken, and workers sleep on their own.

// hubPoll is how long one BLMPOP waits at most; the hub then looks again
// at who sleeps.
const hubPoll = time.Second

type sleepHub struct {
	c *Client
	// kick is the hub's own list, which BLMPOP watches too: a worker that
	// starts sleeping on a list the hub's call does not watch pushes to
	// it, so that the hub calls again with that list.
	kick string

	mu       sync.Mutex
	sleepers map[string][]chan struct{} // by the list they block on
	partner  map[string]string          // a list -> the other isleep list
	watching map[string]bool            // the lists of the call in flight
	running  bool
	broken   bool
}

func newSleepHub(c *Client) *sleepHub {
	if c.cfg.Cluster {
		return nil
	}
	if _, ok := c.rdb.(*redis.ClusterClient); ok {
		return nil
	}
	return &sleepHub{
		c:        c,
		kick:     keys.Prefix + "hub:" + uuid.New(),
		sleepers: map[string][]chan struct{}{},
		partner:  map[string]string{},
		watching: map[string]bool{},
	}
}

// sleep sleeps for d, until woken through list from (whose partner is
// to), or until ctx ends, and answers whether it did; false when the hub
// is broken, and the caller must sleep on its own.
func (h *sleepHub) sleep(ctx context.Context, from, to string, d time.Duration) bool {
	woken := make(chan struct{}, 1)
	h.mu.Lock()
	if h.broken {
		h.mu.Unlock()
		return false
	}
	h.sleepers[from] = append(h.sleepers[from], woken)
	h.partner[from] = to
	kick := h.running && !h.watching[from]
	if !h.running {
		h.running = true
		go h.loop()
	}
	h.mu.Unlock()
	defer h.leave(from, woken)
	if kick {
		h.kickCall(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woken:
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}

func (h *sleepHub) leave(from string, woken chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := slices.DeleteFunc(h.sleepers[from], func(w chan struct{}) bool { return w == woken })
	if len(s) == 0 {
		delete(h.sleepers, from)
	} else {
		h.sleepers[from] = s
	}
}

func (h *sleepHub) kickCall(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = within(h.c, ctx, func(ctx context.Context) (int64, error) {
		return h.c.rdb.LPush(ctx, h.kick, "k").Result()
	})
}

// wakeAll wakes every sleeper; with the hub broken, they go on sleeping on
// their own. Called with h.mu held.
func (h *sleepHub) wakeAll() {
	for _, ws := range h.sleepers {
		for _, w := range ws {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// loop is the hub's goroutine: it runs while anyone sleeps.
func (h *sleepHub) loop() {
	ctx := context.Background()
	failures := 0
	for {
		h.mu.Lock()
		if len(h.sleepers) == 0 {
			h.running = false
			clear(h.watching)
			h.mu.Unlock()
			// Kicks nobody took (the hub's list is its own).
			_, _ = within(h.c, ctx, func(ctx context.Context) (int64, error) { return h.c.rdb.Del(ctx, h.kick).Result() })
			return
		}
		lists := make([]string, 0, len(h.sleepers)+1)
		clear(h.watching)
		for from := range h.sleepers {
			lists = append(lists, from)
			h.watching[from] = true
		}
		h.mu.Unlock()
		slices.Sort(lists)
		lists = append(lists, h.kick)

		key, popped, err := h.c.rdb.BLMPop(ctx, hubPoll, "right", 1, lists...).Result()
		switch {
		case errors.Is(err, redis.Nil):
			failures = 0
			continue
		case err != nil && unsupported(err):
			h.c.log.Debug("mq: sleeping workers block on their own connections", "reason", err.Error())
			h.mu.Lock()
			h.broken, h.running = true, false
			h.wakeAll()
			h.mu.Unlock()
			return
		case err != nil:
			// Redis trouble: wake the sleepers, whose polls report it,
			// and try again after a pause.
			h.mu.Lock()
			h.wakeAll()
			h.mu.Unlock()
			failures++
			time.Sleep(ExpBackoff(failures, 10*time.Millisecond, time.Second, 20*time.Millisecond))
			continue
		}
		failures = 0
		if key == h.kick {
			continue
		}
		h.mu.Lock()
		ws, to := h.sleepers[key], h.partner[key]
		var w chan struct{}
		if len(ws) > 0 {
			w = ws[0]
			h.sleepers[key] = append(ws[1:], w) // the next wake goes to the next one
		}
		h.mu.Unlock()
		dest := to
		if w == nil {
			// Nobody here sleeps on it any more: give the sentinel back, to
			// wake a sleeper of another process; the next call leaves the
			// list out.
			dest = key
		}
		_, _ = within(h.c, ctx, func(ctx context.Context) (int64, error) {
			if dest == key {
				return h.c.rdb.RPush(ctx, dest, popped).Result()
			}
			return h.c.rdb.LPush(ctx, dest, popped).Result()
		})
		if w != nil {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// hubWorks tells whether the client's sleeping workers share the hub's
// one blocking call (not known to be broken).
func (c *Client) hubWorks() bool {
	if c.hub == nil {
		return false
	}
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	return !c.hub.broken
}

// unsupported tells an error that no retry mends: the server lacks BLMPOP
// (before Redis 7, or a server that only resembles Redis) or the ACL user
// may not run it.
func unsupported(err error) bool {
	s := strings.ToUpper(err.Error())
	return strings.Contains(s, "UNKNOWN COMMAND") || strings.HasPrefix(s, "NOPERM") || strings.Contains(s, "ERR UNKNOWN")
}

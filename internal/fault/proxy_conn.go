package fault

import (
	"bufio"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// proxyConn is one client connection and its connection to Redis.
type proxyConn struct {
	p                *Proxy
	client, upstream net.Conn
	// names holds the command names of the requests sent to Redis and
	// not yet answered, in order.
	namesMu   sync.Mutex
	names     []string
	closeOnce sync.Once
	// dead is set once the connection blackholed: nothing more is
	// forwarded either way.
	dead atomic.Bool
}

// reply is one reply on its way to the client.
type reply struct {
	raw    []byte
	at     time.Time // not before
	action Action
}

func (c *proxyConn) start() {
	replies := make(chan reply, 1024)
	c.p.wg.Add(3)
	go func() { defer c.p.wg.Done(); c.forwardRequests() }()
	go func() { defer c.p.wg.Done(); c.readReplies(replies) }()
	go func() { defer c.p.wg.Done(); c.writeReplies(replies) }()
}

func (c *proxyConn) close() {
	c.closeOnce.Do(func() {
		_ = c.client.Close()
		_ = c.upstream.Close()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// forwardRequests copies requests from the client to Redis, one parsed
// request at a time, remembering each one's command for its reply.
func (c *proxyConn) forwardRequests() {
	defer c.close()
	rr := newRESPReader(c.client)
	w := bufio.NewWriterSize(c.upstream, 64<<10)
	for {
		f, err := rr.request()
		if err != nil {
			return
		}
		if c.dead.Load() || c.p.blackholed() {
			c.dead.Store(true)
			c.p.st.swallowed.Add(1)
			continue
		}
		c.namesMu.Lock()
		c.names = append(c.names, f.name)
		c.namesMu.Unlock()
		c.p.st.requests.Add(1)
		if _, err := w.Write(f.raw); err != nil {
			return
		}
		if !rr.buffered() {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// nextName takes the command name of the oldest request not yet
// answered, or "" for a reply to no request seen.
func (c *proxyConn) nextName() string {
	c.namesMu.Lock()
	defer c.namesMu.Unlock()
	if len(c.names) == 0 {
		return ""
	}
	name := c.names[0]
	c.names = c.names[1:]
	return name
}

// readReplies reads Redis's replies, decides on each, and queues it for
// writeReplies. It stops at the first drop.
func (c *proxyConn) readReplies(out chan<- reply) {
	defer close(out)
	rr := newRESPReader(c.upstream)
	for {
		f, err := rr.reply()
		if err != nil {
			return
		}
		r := reply{raw: slices.Clone(f.raw), at: time.Now()}
		if !f.push {
			name := c.nextName()
			var d time.Duration
			r.action, d = c.p.pick(name)
			r.at = r.at.Add(d)
		}
		out <- r
		if r.action == Drop {
			return
		}
	}
}

// writeReplies writes queued replies to the client, each no earlier than
// its time, and closes the connection at a drop.
func (c *proxyConn) writeReplies(in <-chan reply) {
	defer c.close()
	w := bufio.NewWriterSize(c.client, 64<<10)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	broken := false
	for r := range in {
		if broken || c.dead.Load() {
			c.p.st.unanswered.Add(1)
			continue
		}
		if d := time.Until(r.at); d > 0 {
			if err := w.Flush(); err != nil {
				broken = true
				continue
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			<-timer.C
		}
		switch r.action {
		case Drop:
			c.p.st.dropped.Add(1)
			_ = w.Flush() // what came before the dropped reply is delivered
			c.close()
			broken = true
			continue
		case Delay:
			c.p.st.delayed.Add(1)
		}
		if _, err := w.Write(r.raw); err != nil {
			broken = true
			continue
		}
		c.p.st.replies.Add(1)
		if len(in) == 0 {
			if err := w.Flush(); err != nil {
				broken = true
			}
		}
	}
	if !broken {
		_ = w.Flush()
	}
}

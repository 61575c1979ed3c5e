package fault

import (
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Action is what a [Proxy] does with a reply that its [Rule] picks.
type Action int

// The proxy's actions.
const (
	// Pass forwards every reply: the proxy is transparent.
	Pass Action = iota
	// Drop closes the client's connection instead of forwarding the
	// reply, after Redis has received the request and answered it: the
	// client sees a broken connection for a command that took effect.
	Drop
	// Delay forwards the reply Rule.Delay after Redis sent it. Replies on
	// one connection keep their order, so later ones wait too.
	Delay
	// Blackhole stops answering: requests read from then on are swallowed
	// (never sent to Redis) and the connection never answers again, as a
	// peer that vanished without closing would. New connections are
	// accepted and treated the same while the rule holds.
	Blackhole
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Delay:
		return "delay"
	case Blackhole:
		return "blackhole"
	}
	return "action?"
}

// Rule says which replies the proxy acts on, and how.
type Rule struct {
	// Action is what to do with a picked reply.
	Action Action
	// Probability picks each reply with this probability, drawn from the
	// proxy's seeded generator. Ignored when Next is set.
	Probability float64
	// Next, when positive, picks exactly the next Next replies (that
	// Commands admits), then no more.
	Next int
	// Delay is how long Delay holds a reply.
	Delay time.Duration
	// Commands, when not empty, limits the rule to replies to these
	// commands (lower case, e.g. "evalsha"); other replies pass.
	Commands []string
}

// ProxyStats counts what a proxy did.
type ProxyStats struct {
	Conns      int64 // client connections accepted
	Requests   int64 // requests read from clients and sent to Redis
	Replies    int64 // replies forwarded to clients (pushes included)
	Dropped    int64 // replies dropped, each closing a connection
	Delayed    int64 // replies delayed
	Swallowed  int64 // requests swallowed by Blackhole
	Unanswered int64 // replies read from Redis but not forwarded, as on a closing connection
}

// Proxy is a TCP proxy in front of a Redis server that understands RESP
// well enough to act on single replies: it pairs each reply with the
// request it answers (replies come in request order on a connection; RESP3
// pushes are forwarded and not paired) and lets a [Rule] drop or delay
// picked replies, or stop answering altogether. One client write may
// carry many requests (a pipeline); each is counted and paired.
//
// Its methods are safe for concurrent use; the rule may change at any
// time and applies to the replies read after the change.
type Proxy struct {
	// Addr is the proxy's address, "127.0.0.1:PORT", for clients to dial.
	Addr string

	target string
	ln     net.Listener

	mu     sync.Mutex
	rule   Rule
	left   int // replies still to pick under rule.Next
	rng    *rand.Rand
	notify func(Action, string)
	conns  map[*proxyConn]struct{}
	closed bool

	wg sync.WaitGroup
	st struct {
		conns, requests, replies, dropped, delayed, swallowed, unanswered atomic.Int64
	}
}

// NewProxy starts a proxy on a free loopback port in front of the Redis at
// target, passing everything through until told otherwise. seed fixes the
// sequence of random picks. The proxy is closed when the test ends.
func NewProxy(tb testing.TB, target string, seed uint64) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fault: proxy listen: %v", err)
	}
	p := &Proxy{
		Addr:   ln.Addr().String(),
		target: target,
		ln:     ln,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns:  map[*proxyConn]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Set replaces the proxy's rule.
func (p *Proxy) Set(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.Commands = slices.Clone(r.Commands)
	p.rule, p.left = r, r.Next
}

// Notify makes the proxy call fn, from its own goroutines, each time it
// drops or delays a reply, with the action and the command answered. It is
// meant for writing the fault into a history.
func (p *Proxy) Notify(fn func(a Action, command string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notify = fn
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{
		Conns:      p.st.conns.Load(),
		Requests:   p.st.requests.Load(),
		Replies:    p.st.replies.Load(),
		Dropped:    p.st.dropped.Load(),
		Delayed:    p.st.delayed.Load(),
		Swallowed:  p.st.swallowed.Load(),
		Unanswered: p.st.unanswered.Load(),
	}
}

// Close stops accepting, closes every connection, and waits for the
// proxy's goroutines. Closing twice does nothing.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
}

// blackholed tells whether the rule swallows everything.
func (p *Proxy) blackholed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rule.Action == Blackhole
}

// pick decides what to do with one reply to command.
func (p *Proxy) pick(command string) (Action, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rule
	if r.Action == Pass || r.Action == Blackhole {
		return Pass, 0
	}
	if len(r.Commands) > 0 && !slices.Contains(r.Commands, command) {
		return Pass, 0
	}
	switch {
	case r.Next > 0:
		if p.left == 0 {
			return Pass, 0
		}
		p.left--
	case p.rng.Float64() >= r.Probability:
		return Pass, 0
	}
	if notify := p.notify; notify != nil {
		p.mu.Unlock()
		notify(r.Action, command)
		p.mu.Lock()
	}
	return r.Action, r.Delay
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.st.conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.open(client)
		}()
	}
}

// open connects a new client connection to Redis and starts forwarding.
func (p *Proxy) open(client net.Conn) {
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close() // Redis is down: so is the proxy
		return
	}
	c := &proxyConn{p: p, client: client, upstream: upstream}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		_ = upstream.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	c.start()
}

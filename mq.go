// Package mq is a durable, distributed message queue on Redis that keeps
// Carmine's message-queue protocol: a queue written by this package is laid
// out in Redis exactly as Carmine (the Clojure library) lays it out, and moves
// through the same states, so Go and Clojure services can share one queue
// when they agree on the message encoding.
//
// A [Client] enqueues messages; its [Inspector] reads and administers the
// queues; a [Worker] polls a queue and hands each message to a [Handler]. Every decision is one atomic Lua
// script run on the Redis server, timed by the server's own clock.
//
// # Delivery
//
// Messages are kept until a handler's outcome is recorded. A message is handed
// to one handler at a time as long as that handler finishes within the
// message's lock time; when a lock expires (a crashed worker, a stalled
// handler) the message is handed out again with the next attempt number. So
// delivery is at least once, and exactly once while handlers finish within
// their lock.
//
// # Keys
//
// All keys of queue Q start with "carmine:mq:Q:" ("carmine:mq:{Q}:" with
// [Config.Cluster]); see the README for the full layout.
package mq

import (
	"cmp"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/redis/go-redis/v9"
)

// Version is this library's version, as a worker's heartbeat and start
// line tell it.
const Version = "0.1.0"

// Limits on names.
const (
	// MaxQueueNameLength is the longest queue name accepted, in bytes.
	MaxQueueNameLength = 1024
	// MaxMessageIDLength is the longest message id accepted, in bytes.
	MaxMessageIDLength = 1024
	// DefaultMaxMessageSize is Redis's limit on one string: 512 MiB.
	DefaultMaxMessageSize = 512 << 20
)

// Config configures a [Client]. The zero value (or nil) is valid.
type Config struct {
	// Codec encodes messages on enqueue and decodes them for handlers.
	// Default: MsgpackCodec.
	Codec Codec

	// Logger receives the package's logs. Default: slog.Default().
	Logger *slog.Logger

	// MaxMessageSize is the largest encoded message accepted, in bytes; a
	// larger one is refused with ErrMessageTooLarge before anything is
	// written. Default and maximum: DefaultMaxMessageSize (512 MiB).
	MaxMessageSize int

	// Cluster writes queue names as {Q} in keys, so that all of a queue's
	// keys hash to one Redis Cluster slot. Required with a
	// *redis.ClusterClient; a queue written in one mode is not seen in the
	// other. Default: false (Carmine's layout).
	Cluster bool

	// NoCarmineWorkers says that no Carmine worker reads the client's
	// queues, only this library's, and that no Carmine producer resets a
	// backoff on them: a message waiting out a backoff (delayed, or
	// retried with a backoff) then waits in the due index alone, instead
	// of also standing on mid-circle, where Carmine's protocol keeps it
	// and this library's idle workers lap it once per end-of-queue sleep
	// (docs/protocol.md §11, §13). A Carmine worker still sees such a
	// message once this library's poll moves it to mids-ready when it
	// falls due, but not if only Carmine's workers run, and a Carmine
	// enqueue's reset of its backoff is seen only when the old backoff
	// ends. Default: false.
	NoCarmineWorkers bool

	// EnqueueMiddleware wraps Enqueue and EnqueueMany (and so a
	// Producer's), in order: the first is the outermost (see
	// [EnqueueMiddleware]). Default: none.
	EnqueueMiddleware []EnqueueMiddleware

	// HandoffWindow is how long a follow-up's or a batch completion's id
	// is kept after it was handled, so that the relay delivering it again
	// (after a crash between its enqueue and the removal of its record)
	// is refused as a duplicate (docs/protocol.md §22). It bounds how long
	// a hand-off may wait undelivered and stay exactly once. Default:
	// DefaultHandoffWindow.
	HandoffWindow time.Duration
}

// withDefaults returns a copy of c with every unset field defaulted.
func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Codec == nil {
		out.Codec = MsgpackCodec{}
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	out.MaxMessageSize = cmp.Or(out.MaxMessageSize, DefaultMaxMessageSize)
	out.HandoffWindow = cmp.Or(out.HandoffWindow, DefaultHandoffWindow)
	return out
}

func (c *Config) validate() error {
	if c.MaxMessageSize < 0 || c.MaxMessageSize > DefaultMaxMessageSize {
		return fmt.Errorf("%w: MaxMessageSize %d is not within 1 to %d bytes", ErrInvalidOption, c.MaxMessageSize, DefaultMaxMessageSize)
	}
	return nil
}

// Client enqueues messages and runs workers; its [Inspector] reads and
// administers the queues. It is safe for concurrent use; create one per
// Redis and share it.
type Client struct {
	rdb redis.UniversalClient
	cfg Config
	log *slog.Logger

	// receiptTTL is how long Redis keeps an enqueue call's receipt: longer
	// than go-redis may go on sending the call again (resendWindow).
	receiptTTL time.Duration
	// keepsDeadlines tells whether rdb applies context deadlines itself.
	keepsDeadlines bool
	// enqueueVia is the enqueue middleware's chain, nil for none
	// (middleware.go).
	enqueueVia EnqueueFunc

	keyCache sync.Map // queue name -> []string, every key of the queue
	leans    sync.Map // queue name -> *protocol.Lean, the keys its polls pass
	// backlogs is which queues' mids-ready held the wake backlog at this
	// client's last enqueue to them: its lean calls there go short
	// (docs/protocol.md §3)
	backlogs protocol.Backlogs
	groups   sync.Map // queue name -> *enqueueGroup (coalesce.go)
	// registered holds the queues this client put in the registry
	// (registry.go), so that it registers each once.
	registered sync.Map // queue name -> struct{}
	// beatRegistered holds when the heartbeats of the client's workers
	// last registered each queue (registry.go).
	beatRegistered sync.Map // queue name -> time.Time

	// sleepers counts the polling loops of the client's running workers,
	// each of which may hold a pooled connection while it sleeps (pool.go).
	sleepers atomic.Int64
	// hub lets the client's sleeping workers share one blocking call
	// (hub.go); nil in cluster mode.
	hub *engine.Hub
	// holdings counts what the client's workers hold together: a poll
	// tells Redis what the process holds, for quarantine without
	// innocent victims (docs/protocol.md §11).
	holdings engine.Holdings
	// subs is the client's one Pub/Sub connection, which cancels and
	// results share (pubsub.go).
	subs *pubSub
	// cancels is the client's watch of the cancel channels of its
	// workers' queues, and the handlings it may cancel (cancel.go).
	cancels *cancelWatch

	inspector *Inspector

	// results is the client's waits for results (results_hub.go).
	results resultHub

	// schedWake wakes the client's schedulers when a schedule changes
	// (scheduler.go).
	schedWake wakeup

	// closed is set by Close; workers holds the workers started and not
	// yet ended, for Close to stop.
	closed  atomic.Bool
	mu      sync.Mutex
	workers map[*Worker]struct{}
}

// New returns a client that uses rdb, which may be a *redis.Client,
// *redis.ClusterClient (with Config.Cluster) or a Sentinel failover client.
// cfg may be nil for defaults; it is copied. The client never closes rdb.
func New(rdb redis.UniversalClient, cfg *Config) (*Client, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrInvalidOption)
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if _, ok := rdb.(*redis.ClusterClient); ok && !c.Cluster {
		return nil, ErrClusterModeRequired
	}
	client := &Client{rdb: rdb, cfg: c, log: c.Logger, receiptTTL: receiptTTL(rdb), keepsDeadlines: keepsDeadlines(rdb)}
	if len(c.EnqueueMiddleware) > 0 {
		var err error
		if client.enqueueVia, err = chainEnqueue(client.enqueueDirect, c.EnqueueMiddleware); err != nil {
			return nil, err
		}
	}
	client.hub = newSleepHub(client)
	client.subs = newPubSub(rdb)
	client.cancels = newCancelWatch(client)
	client.results.s = client.subs
	client.inspector = &Inspector{c: client}
	client.workers = map[*Worker]struct{}{}
	return client, nil
}

// Close stops every worker of the client that still runs, as Worker.Close
// does, and then the client's own background work (the sleep hub), and
// returns once their goroutines returned (with Redis hung, once each
// worker's close gave up: see Worker.Close). A worker of the client cannot
// be started after it (ErrClientClosed); enqueues and reads still work.
// Close does not close the Redis client. Closing twice does nothing.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	ws := make([]*Worker, 0, len(c.workers))
	for w := range c.workers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { _ = w.Close() })
	}
	wg.Wait()
	c.hub.Close()
	c.cancels.close()
	c.results.close()
	c.subs.close()
	return nil
}

// started and ended keep the client's running workers, for Close.
func (c *Client) started(w *Worker) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClientClosed
	}
	c.workers[w] = struct{}{}
	c.holdings.Join(w.room)
	return nil
}

func (c *Client) ended(w *Worker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.workers, w)
	c.holdings.Leave(w.room)
}

// Receipts of enqueue calls: kept at least minReceiptTTL, and
// receiptMargin longer than the client's resend window; for a client whose
// window is unbounded or unknown, unknownReceiptTTL.
const (
	minReceiptTTL     = 30 * time.Second
	receiptMargin     = 10 * time.Second
	unknownReceiptTTL = 5 * time.Minute
)

// receiptTTL is how long the receipts of rdb's enqueue calls are kept.
func receiptTTL(rdb redis.UniversalClient) time.Duration {
	w, ok := resendWindow(rdb)
	if !ok {
		return unknownReceiptTTL
	}
	return max(minReceiptTTL, w+receiptMargin)
}

// resendWindow bounds the time from a command's first send to the last
// time go-redis may send it again, from rdb's options: every attempt may
// wait for a dial, a write and a read, with a pause between attempts. It
// answers false when that is unbounded (a timeout turned off) or unknown
// (a client type it cannot read).
func resendWindow(rdb redis.UniversalClient) (time.Duration, bool) {
	var attempts int
	var dial, write, read, pause time.Duration
	switch c := rdb.(type) {
	case *redis.Client:
		o := c.Options()
		attempts, dial, write, read, pause = o.MaxRetries+1, o.DialTimeout, o.WriteTimeout, o.ReadTimeout, o.MaxRetryBackoff
	case *redis.ClusterClient:
		o := c.Options()
		// A cluster command is tried once per redirect allowed, and each
		// try may go through its node client's own retries.
		attempts = (o.MaxRedirects + 1) * (o.MaxRetries + 1)
		dial, write, read, pause = o.DialTimeout, o.WriteTimeout, o.ReadTimeout, o.MaxRetryBackoff
	default:
		return 0, false
	}
	if attempts < 1 {
		attempts = 1
	}
	if dial <= 0 || write <= 0 || read <= 0 {
		return 0, false
	}
	return time.Duration(attempts)*(dial+write+read) + time.Duration(attempts-1)*max(0, pause), true
}

// randomID returns 16 random hex digits, for receipt keys and pollers.
func randomID() string {
	return strconv.FormatUint(rand.Uint64()|1<<63, 16)
}

// Redis returns the Redis client this client uses.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// keys returns every key of queue q in the order the scripts expect. The
// slice is shared and must not be changed.
func (c *Client) keys(q string) []string {
	if ks, ok := c.keyCache.Load(q); ok {
		return ks.([]string)
	}
	ks := keys.All(q, c.cfg.Cluster)
	c.keyCache.Store(q, ks)
	return ks
}

// lean returns queue q's lean state (docs/protocol.md §4): its poll
// calls pass the lean key set until one finds that the queue uses an
// extension with keys of its own, and every key from then on, for every
// worker of this client.
func (c *Client) lean(q string) *protocol.Lean {
	if l, ok := c.leans.Load(q); ok {
		return l.(*protocol.Lean)
	}
	l, _ := c.leans.LoadOrStore(q, new(protocol.Lean))
	return l.(*protocol.Lean)
}

// key returns one key of queue q.
func (c *Client) key(q string, i keys.Index) string {
	return c.keys(q)[i]
}

// ValidateQueueName tells whether name may be used as a queue name, and if
// not, why (an error wrapping ErrInvalidQueueName).
func ValidateQueueName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidQueueName)
	case len(name) > MaxQueueNameLength:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidQueueName, len(name), MaxQueueNameLength)
	}
	if i := strings.IndexAny(name, "*?[]\\{}"); i >= 0 {
		return fmt.Errorf("%w: %q holds %q (glob characters and braces are not allowed)", ErrInvalidQueueName, name, name[i])
	}
	if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%w: %q holds a control character", ErrInvalidQueueName, name)
	}
	return nil
}

func validateMessageID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidMessageID)
	case id == protocol.EndOfCircle:
		return fmt.Errorf("%w: %q is the circle's sentinel", ErrInvalidMessageID, id)
	case len(id) > MaxMessageIDLength:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMessageID, len(id), MaxMessageIDLength)
	}
	return nil
}

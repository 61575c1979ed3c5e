package mqprom

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocarmine/mq"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of QueueOptions.
const (
	// DefaultTimeout bounds the Redis reads of one scrape: half
	// Prometheus's default scrape timeout of 10 s.
	DefaultTimeout = 5 * time.Second
	// DefaultConcurrency is how many queues a scrape reads at once.
	DefaultConcurrency = 4
)

// QueueOptions configure a [QueueCollector]. The zero value (or nil) is
// valid.
type QueueOptions struct {
	// Queues names the queues to export (a queue without messages exports
	// zeros). Default (nil): every queue Inspector.QueueNames finds at each
	// scrape, which SCANs Redis's whole keyspace (every master of a
	// cluster); naming the queues saves that. QueueNames lists the queues
	// with messages or dead letters, or paused; the collector also reads
	// the queues it listed before, until a read finds one empty, so that
	// an emptied queue exports zeros once before its series end.
	Queues []string

	// Timeout bounds the Redis reads of one scrape. A queue not read by
	// then is a scrape error, and the queues read are exported. Default:
	// DefaultTimeout.
	Timeout time.Duration

	// Concurrency is how many queues are read at once, each in one round
	// trip. Default: DefaultConcurrency.
	Concurrency int

	// Logger receives a warning for each scrape that failed to read
	// something, with the first error. Default: slog.Default().
	Logger *slog.Logger
}

// Scrape error operations, the op label of mq_scrape_errors_total.
const (
	opQueueNames  = "queue_names"
	opQueueCounts = "queue_counts"
)

// QueueCollector is a prometheus.Collector of every queue's counts by
// state, read from Redis on each scrape (see the package doc for its
// metrics). Since they come from Redis, any one process, or a process of
// its own, exports them for every worker in every process. It is safe for
// concurrent use.
type QueueCollector struct {
	client *mq.Client
	opts   QueueOptions

	messages, total, dead, paused, stale *prometheus.Desc
	byPriority                           *prometheus.Desc
	errorsDesc, errorDesc, durationDesc  *prometheus.Desc
	lastMinute, lastHour                 *prometheus.Desc
	results                              *prometheus.Desc
	slotsHeld, parked                    *prometheus.Desc
	handoffs                             *prometheus.Desc

	nameErrors, countErrors atomic.Int64

	mu sync.Mutex
	// last holds the counts last read of each queue exported: with Queues
	// nil, the queues listed and not read empty since. A scrape that
	// cannot read a queue exports them, marked stale.
	last map[string]queueState
}

// queueState is what one read of a queue found: its counts, and its
// history's sums (history.go).
type queueState struct {
	counts mq.QueueCounts
	hist   historySums
}

// NewQueueCollector returns a collector of the counts of the queues of
// client. opts may be nil for defaults; it is copied.
func NewQueueCollector(client *mq.Client, opts *QueueOptions) *QueueCollector {
	c := &QueueCollector{client: client, last: map[string]queueState{}}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Queues != nil {
		q := slices.Clone(c.opts.Queues)
		slices.Sort(q)
		c.opts.Queues = slices.Compact(q) // a name twice would export its metrics twice
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = DefaultTimeout
	}
	if c.opts.Concurrency <= 0 {
		c.opts.Concurrency = DefaultConcurrency
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
	c.messages = prometheus.NewDesc("mq_queue_messages",
		"Messages of the queue by state, read from Redis (mq.QueueCounts), each counted once: queued (ready now), locked (being handled), backoff (waiting for a delay or a retry) and done (handled, in its dedupe window, or left by a Carmine worker for collection).",
		[]string{"queue", "state"}, nil)
	c.total = prometheus.NewDesc("mq_queue_total_messages",
		"Messages in the queue, whatever their state (mq.QueueCounts.Total); dead letters are not among them.",
		[]string{"queue"}, nil)
	c.dead = prometheus.NewDesc("mq_queue_dead_letters",
		"Dead letters of the queue: messages that failed for good or were quarantined, kept out of the queue (mq.QueueCounts.Dead, mq.Inspector.DeadLetters).",
		[]string{"queue"}, nil)
	c.results = prometheus.NewDesc("mq_queue_results",
		"Results the queue keeps: what handlers gave with their successes (mq.Message.SetResult), bounded by the workers' ResultMaxCount and ResultMaxAge (mq.QueueCounts.Results).",
		[]string{"queue"}, nil)
	c.paused = prometheus.NewDesc("mq_queue_paused",
		"1 while the queue is paused (mq.Inspector.PauseQueue), else 0.",
		[]string{"queue"}, nil)
	c.byPriority = prometheus.NewDesc("mq_queue_ready_by_priority",
		"Ready messages of the queue with a priority (mq.EnqueueOptions.Priority), by priority: high or low; the other ready messages are normal (mq.QueueCounts.ReadyHigh and ReadyLow). Each is the length of the priority's list, an upper bound: an id deleted, or handled by a Carmine worker, stays on it until a poll meets it.",
		[]string{"queue", "priority"}, nil)
	c.stale = prometheus.NewDesc("mq_queue_stale",
		"1 while the queue's other series hold the counts last read, because this scrape could not read Redis (see mq_scrape_errors_total); 0 when they were read now.",
		[]string{"queue"}, nil)
	c.errorsDesc = prometheus.NewDesc("mq_scrape_errors_total",
		"Failed reads from Redis by scrapes of the queue collector, by operation: queue_names (listing the queues) or queue_counts (one queue's counts).",
		[]string{"op"}, nil)
	c.errorDesc = prometheus.NewDesc("mq_scrape_error",
		"1 if the last scrape of the queue collector failed to read anything from Redis, else 0.",
		nil, nil)
	c.durationDesc = prometheus.NewDesc("mq_scrape_duration_seconds",
		"How long the last scrape of the queue collector took to read Redis.",
		nil, nil)
	c.handoffs = prometheus.NewDesc("mq_handoffs_pending",
		"Hand-off records of the queue waiting for a relay: follow-ups of successes, batch members' ticks and batch completions, not yet enqueued where they go (mq.Inspector.PendingHandoffs, docs/protocol.md §22). Growing means no worker of the queue relays.",
		[]string{"queue"}, nil)
	c.lastMinute = prometheus.NewDesc("mq_history_handlings_last_minute",
		"Handlings of the queue in the last whole minute by the Redis server's clock, as its workers recorded them in Redis (mq.Inspector.History), by kind: processed (succeeded, retried, failed or dead), failed (of them, not succeeded) and dead (dead letters written, quarantines included).",
		[]string{"queue", "kind"}, nil)
	c.lastHour = prometheus.NewDesc("mq_history_handlings_last_hour",
		"Handlings of the queue in the last 60 whole minutes by the Redis server's clock, by kind, as mq_history_handlings_last_minute counts them.",
		[]string{"queue", "kind"}, nil)
	c.slotsHeld = prometheus.NewDesc("mq_queue_limit_slots_held",
		"Concurrency slots held in the queue now: messages handed out under a concurrency limit and not yet ended (mq.Inspector.Limits); exported for queues with limits.",
		[]string{"queue"}, nil)
	c.parked = prometheus.NewDesc("mq_queue_limit_parked",
		"Messages parked for want of a slot of their limit key (mq.Inspector.Limits); exported for queues with limits.",
		[]string{"queue"}, nil)
	return c
}

// Describe sends the descriptions of the collector's metrics.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.total, c.dead, c.paused, c.stale, c.errorsDesc, c.errorDesc, c.durationDesc,
		c.lastMinute, c.lastHour, c.results, c.slotsHeld, c.parked, c.handoffs, c.byPriority} {
		ch <- d
	}
}

// queueRead is one queue's counts and history, or why they could not be
// read.
type queueRead struct {
	queueState
	err error
}

// Collect reads the queues' counts from Redis, within the Timeout, and
// sends them. A failed read is counted in mq_scrape_errors_total (one per
// queue) and logged (one line per scrape); the scrape itself never fails.
// A queue it could not read exports the counts last read, with
// mq_queue_stale at 1, so that its series (and the alerts on them) go on
// while Redis is away; a queue never read exports mq_queue_stale alone.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	failed := false

	queues, listed := c.opts.Queues, true
	if queues == nil {
		names, err := c.client.Inspector().QueueNames(ctx, "*")
		if err != nil {
			failed, listed = true, false
			c.nameErrors.Add(1)
			c.opts.Logger.Warn("mqprom: listing the queues failed", slog.Any("error", err))
		}
		// A failed listing reads nothing: the queues known are exported
		// as last read.
		queues = c.withKnown(names)
	}
	var reads []queueRead
	if listed {
		reads = c.read(ctx, queues)
	}
	last := c.remember(queues, reads)
	nfailed, firstFailed := 0, -1
	for i, q := range queues {
		fresh := listed && reads[i].err == nil
		if listed && !fresh {
			nfailed++
			if firstFailed < 0 {
				firstFailed = i
			}
		}
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, bool01(!fresh), q)
		var st queueState
		if fresh {
			st = last[i]
		} else if st, fresh = c.lastRead(q); !fresh {
			continue
		}
		n := st.counts
		for _, s := range []struct {
			state string
			n     int64
		}{{"queued", n.Queued}, {"locked", n.Locked}, {"backoff", n.Backoff}, {"done", n.Done}} {
			ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(s.n), q, s.state)
		}
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(n.Total), q)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n.Dead), q)
		ch <- prometheus.MustNewConstMetric(c.results, prometheus.GaugeValue, float64(n.Results), q)
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, bool01(n.Paused), q)
		ch <- prometheus.MustNewConstMetric(c.byPriority, prometheus.GaugeValue, float64(n.ReadyHigh), q, "high")
		ch <- prometheus.MustNewConstMetric(c.byPriority, prometheus.GaugeValue, float64(n.ReadyLow), q, "low")
		c.collectHistory(ch, q, st.hist)
		if n := st.counts; n.Limited || n.LimitSlotsHeld != 0 || n.LimitParked != 0 {
			ch <- prometheus.MustNewConstMetric(c.slotsHeld, prometheus.GaugeValue, float64(n.LimitSlotsHeld), q)
			ch <- prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(n.LimitParked), q)
		}
		ch <- prometheus.MustNewConstMetric(c.handoffs, prometheus.GaugeValue, float64(st.counts.HandoffsPending), q)
	}
	if nfailed > 0 {
		// One line a scrape, however many queues failed (a deadline that
		// passed fails every queue not read by then).
		failed = true
		c.countErrors.Add(int64(nfailed))
		c.opts.Logger.Warn("mqprom: reading queue counts failed", slog.Int("queues_failed", nfailed),
			slog.Int("queues", len(queues)), slog.String("queue", queues[firstFailed]), slog.Any("error", reads[firstFailed].err))
	}
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, float64(c.nameErrors.Load()), opQueueNames)
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, float64(c.countErrors.Load()), opQueueCounts)
	ch <- prometheus.MustNewConstMetric(c.errorDesc, prometheus.GaugeValue, bool01(failed))
	ch <- prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, time.Since(start).Seconds())
}

// withKnown answers the queues listed and those known from before,
// sorted, each once.
func (c *QueueCollector) withKnown(listed []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	queues := slices.Grow(slices.Clone(listed), len(c.last))
	for q := range c.last {
		queues = append(queues, q)
	}
	slices.Sort(queues)
	return slices.Compact(queues)
}

// remember keeps the counts read, and answers them in the order of
// queues. With Queues nil, a queue read empty is forgotten: its zeros are
// exported this once, and the listing finds it again once it holds
// something. A queue whose read failed stays as it was.
func (c *QueueCollector) remember(queues []string, reads []queueRead) []queueState {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := make([]queueState, len(reads))
	for i, r := range reads {
		q := queues[i]
		switch {
		case r.err != nil:
			continue
		case r.counts == (mq.QueueCounts{}) && c.opts.Queues == nil:
			delete(c.last, q)
		default:
			c.last[q] = r.queueState
		}
		counts[i] = r.queueState
	}
	return counts
}

// lastRead answers the counts last read of queue q, if any.
func (c *QueueCollector) lastRead(q string) (queueState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.last[q]
	return n, ok
}

// read reads the counts and history of queues, Concurrency at a time,
// two round trips each, and answers them in the order of queues.
func (c *QueueCollector) read(ctx context.Context, queues []string) []queueRead {
	reads := make([]queueRead, len(queues))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.opts.Concurrency, len(queues)) {
		wg.Go(func() {
			for i := range next {
				reads[i].counts, reads[i].err = c.client.Inspector().QueueCounts(ctx, queues[i])
				if reads[i].err == nil {
					reads[i].hist, reads[i].err = readHistory(ctx, c.client, queues[i])
				}
			}
		})
	}
	for i := range queues {
		next <- i
	}
	close(next)
	wg.Wait()
	return reads
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

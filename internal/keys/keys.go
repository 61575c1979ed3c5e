// Package keys builds the Redis key names of a queue.
//
// Every key a script touches is built here and passed to the script in KEYS,
// in the fixed order of [Suffixes], so that Redis Cluster can route the call
// and no script ever builds a key name of its own.
package keys

import "strings"

// Prefix starts every key of every queue.
const Prefix = "carmine:mq:"

// Index names a position in a queue's key list. Scripts see key i at KEYS[i+1].
type Index int

// The keys of one queue, in the order they are passed to every script.
const (
	Messages Index = iota
	MessagesRQ
	LockTimes
	LockTimesRQ
	UDTs
	Locks
	Backoffs
	NAttempts
	Done
	Requeue
	MidsReady
	MidCircle
	NDryRuns
	ISleepA
	ISleepB
	// The keys from here on are beyond Carmine: see Suffixes.
	LockAliases
	EnqueueReceipts
	EnqueueReceiptsPrev
	PollReceipts
	PollReceiptsPrev
	Paused
	Due
	Windows
	NOutcomes
	Dead
	DeadIndex
	Workers
	WorkerInfo
	Meta
	Resumed
	History
	AttemptErrors
	NSolo
	Features
	Policy
	PrioHi
	PrioLo
	Prio
	Results
	ResultsIndex
	Handoffs
	Batches
	BatchSeen
	Cancels
	Progress
	Limits
	RateTat
	RateKeys
	Slots
	SlotCounts
	Parked
	LimitKey
	count
)

// Suffixes holds the key suffix of each Index, as Carmine names them.
var Suffixes = [count]string{
	Messages:    "messages",
	MessagesRQ:  "messages-rq",
	LockTimes:   "lock-times",
	LockTimesRQ: "lock-times-rq",
	UDTs:        "udts",
	Locks:       "locks",
	Backoffs:    "backoffs",
	NAttempts:   "nattempts",
	Done:        "done",
	Requeue:     "requeue",
	MidsReady:   "mids-ready",
	MidCircle:   "mid-circle",
	NDryRuns:    "ndry-runs",
	ISleepA:     "isleep-a",
	ISleepB:     "isleep-b",

	// Beyond Carmine, which ignores them (see the protocol document):
	// lock-aliases: mid -> "old new", the lock token a renewal was
	// presented and the one it wrote, so that a handling whose renewal
	// reply was lost still proves its lock.
	LockAliases: "lock-aliases",
	// enqueue-receipts: the answers of recent enqueue calls, by call
	// token, so that a resent call is recognised; -prev holds the
	// generation before.
	EnqueueReceipts:     "enqueue-receipts",
	EnqueueReceiptsPrev: "enqueue-receipts-prev",
	// poll-receipts: by poller id, what its latest call applied, so that
	// a lost poll reply costs nothing; -prev holds the generation before.
	PollReceipts:     "poll-receipts",
	PollReceiptsPrev: "poll-receipts-prev",
	// paused: set while the queue is paused (the server time it was
	// paused at, in ms): polls then hand nothing out.
	Paused: "paused",
	// due: a sorted set of mids by the server time (ms) at which their
	// status next changes by time alone: the lock expiry of a handed-out
	// message, the end of a queued message's backoff. Polls take what is
	// due from it instead of lapping mid-circle, and an idle worker sleeps
	// until its earliest entry.
	Due: "due",
	// windows: a sorted set of the mids in a dedupe window (done with a
	// backoff), by the window's end, so that polls collect them when it
	// ends and the queue counts subtract them once.
	Windows: "windows",
	// noutcomes: mid -> how many retry outcomes were recorded for it, so
	// that nattempts less noutcomes counts the handings out that never
	// got an outcome (their handlers' processes died).
	NOutcomes: "noutcomes",
	// dead: mid -> the dead letter of a message that failed for good
	// (its content, last error, attempts and times); dead-index orders
	// them by the time they died, to page through and to bound them.
	Dead:      "dead",
	DeadIndex: "dead-index",
	// workers: a sorted set of live worker ids by the server time their
	// heartbeat expires; worker-info: id -> what the worker says of
	// itself (JSON).
	Workers:    "workers",
	WorkerInfo: "worker-info",
	// meta: mid -> the message's metadata (EnqueueOptions.Metadata,
	// encoded by the client), beside its content so that Carmine's
	// workers still read the content they expect.
	Meta: "meta",
	// resumed: a list holding one element from a resume until the next
	// pause, which the workers of a paused queue block on instead of the
	// isleep lists, so that enqueues do not wake them and a resume wakes
	// them all.
	Resumed: "resumed",
	// history: the queue's outcomes per minute by the server's clock,
	// for the last day: "<minute>p" -> handlings recorded, "<minute>f"
	// -> of them failed, "<minute>d" -> dead letters written, and "last"
	// -> the latest minute written, from which older minutes are trimmed.
	History: "history",
	// attempt-errors: mid -> the errors of the message's latest failed
	// attempts (a bounded list), so that its dead letter shows each.
	AttemptErrors: "attempt-errors",
	// nsolo: mid -> the solo hand-outs of a suspect (a message handed
	// out before without an outcome): how many were lost, and the attempt
	// and outcome counts at the latest, so that a loss in a crowd (a
	// process that died holding other messages too) is told apart from a
	// loss alone (docs/protocol.md §11, Quarantine).
	NSolo: "nsolo",
	// features: feature -> "1", for each extension the queue ever used
	// (docs/protocol.md §14), so that a poll reads the keys of an
	// extension only when the queue uses it. Only ClearQueues removes it.
	Features: "features",
	// policy: mid -> the message's own policy (attempts, retry backoff,
	// handling timeout, dedupe window), tagged with its first-enqueue time
	// so that a field a Carmine worker's collection left behind is never
	// taken for a later message's (§14).
	Policy: "policy",
	// prio-hi, prio-lo: the ids of queued messages of high and low
	// priority, ready to hand out, beside Carmine's mids-ready (normal
	// priority), which polls take from in the order prio-hi, mids-ready,
	// prio-lo (docs/protocol.md §18). Their ids stand on mid-circle too,
	// where a Carmine worker finds them.
	PrioHi: "prio-hi",
	PrioLo: "prio-lo",
	// prio: mid -> the message's priority, "h" or "l" (normal has no
	// entry), tagged with its first-enqueue time as policy is, so that
	// its retries and releases go back to its list.
	Prio: "prio",
	// results: mid -> "<ms>:<bytes>", the result a handler gave with its
	// success and when it was recorded, by the server's clock;
	// results-index orders them by that time, to bound them by age and
	// count (docs/protocol.md §21). The results name is also the channel
	// the outcome scripts publish a finished mid on, for waiters.
	Results:      "results",
	ResultsIndex: "results-index",
	// handoffs: records still to deliver, each a string (docs/protocol.md
	// §22): the follow-ups of one success ("F"), a batch member's final
	// outcome to tick its batch with ("T"), a completed batch's
	// completion to enqueue ("C"). The outcome script appends them with
	// the outcome; a relay delivers each, then removes it.
	Handoffs: "handoffs",
	// batches: per batch b of which this queue receives the completion,
	// "<b>" -> the completion message (encoded by the client), "<b>:n" ->
	// the number of members, "<b>:s" and "<b>:d" -> members succeeded and
	// dead, "<b>:at" -> when it was enqueued, "<b>:done" -> when it
	// completed (§22).
	Batches: "batches",
	// batch-seen: the member ticks a batch of this queue counted, by
	// when, so that a tick delivered twice counts once (§22).
	BatchSeen: "batch-seen",
	// cancels: mid -> the cancel asked of a handled message (§20), tagged
	// with its first-enqueue time ('<udt>:<ms asked>'): any outcome of it
	// is recorded as cancelled, and a poll never hands it out again.
	Cancels: "cancels",
	// progress: mid -> the latest progress its handler reported (§20),
	// tagged like cancels ('<udt>:<ms> <n> <note>').
	Progress: "progress",
	// limits: the queue's limits (docs/protocol.md §19), set by
	// Inspector.SetLimits: "rate" and "key-rate" -> "<n> <period ms>
	// <burst>", "conc" and "key-conc" -> "<n>"; read by polls only when
	// features says the queue uses limits.
	Limits: "limits",
	// rate-tat: the theoretical arrival times (GCRA, in µs by the
	// server's clock) of the rate per limit key, "k:<key>", and the
	// reserved key tokens, "r:<mid>" -> when one comes due (ms); rate-keys
	// orders the per-key fields by that time, so that polls trim the
	// state of keys whose time passed (§19).
	RateTat:  "rate-tat",
	RateKeys: "rate-keys",
	// slots: the concurrency slots taken, "h:<mid>" -> the limit key the
	// slot counts under ("" for none), and the parked ids, "p:<mid>" ->
	// their member of parked; slot-counts: "q" -> slots held in the
	// queue, "k:<key>" -> per key, "seq" -> the last parking number,
	// "tq" -> the queue rate's theoretical arrival time (µs), "nr" -> the
	// number of reserved key tokens (§19).
	Slots:      "slots",
	SlotCounts: "slot-counts",
	// parked: the ids refused for want of a slot of their key, FIFO per
	// key: a sorted set of "<key>\0<seq, 16 digits>\0<mid>", all at score
	// 0 (§19).
	Parked: "parked",
	// limit-key: mid -> the message's limit key (EnqueueOptions.LimitKey),
	// tagged with its first-enqueue time as prio is (§18, §19).
	LimitKey: "limit-key",
}

// Count is the number of keys of one queue.
const Count = int(count)

// QueuePart is how the queue name appears in its keys: the name itself, or
// {name} in cluster mode so that every key of the queue hashes to one slot.
func QueuePart(queue string, cluster bool) string {
	if cluster {
		return "{" + queue + "}"
	}
	return queue
}

// QueuePrefix is the common prefix of every key of the queue, ending in ':'.
func QueuePrefix(queue string, cluster bool) string {
	return Prefix + QueuePart(queue, cluster) + ":"
}

// Key is the name of one key of the queue.
func Key(queue string, cluster bool, i Index) string {
	return QueuePrefix(queue, cluster) + Suffixes[i]
}

// All returns every key of the queue in Index order.
func All(queue string, cluster bool) []string {
	p := QueuePrefix(queue, cluster)
	ks := make([]string, count)
	for i, s := range Suffixes {
		ks[i] = p + s
	}
	return ks
}

// MessagesPattern is the SCAN pattern that finds the messages hash of every
// queue whose name matches the glob pattern (use "*" for all).
func MessagesPattern(pattern string, cluster bool) string { return Pattern(pattern, cluster, Messages) }

// Pattern is the SCAN pattern that finds key i of every queue whose name
// matches the glob pattern.
func Pattern(pattern string, cluster bool, i Index) string {
	return SuffixPattern(pattern, cluster, Suffixes[i])
}

// SuffixPattern is Pattern for the key of a queue named by its suffix.
func SuffixPattern(pattern string, cluster bool, suffix string) string {
	if cluster {
		return Prefix + "{" + pattern + "}:" + suffix
	}
	return Prefix + pattern + ":" + suffix
}

// QueueFromMessagesKey returns the queue name held by a messages key of the
// given layout, and whether the key has that layout's shape. Braces tell
// the layouts apart: a plain name never holds one (a braced name belongs to
// the cluster layout), and a cluster key holds the name as {name}, with no
// brace inside. The caller still has to check the name's other rules, and
// that the key really is a queue's.
func QueueFromMessagesKey(key string, cluster bool) (string, bool) {
	return QueueFromKey(key, cluster, Messages)
}

// QueueFromKey is QueueFromMessagesKey for key i of a queue.
func QueueFromKey(key string, cluster bool, i Index) (string, bool) {
	return QueueFromSuffixKey(key, cluster, Suffixes[i])
}

// QueueFromSuffixKey is QueueFromKey for the key of a queue named by its
// suffix.
func QueueFromSuffixKey(key string, cluster bool, suffix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, ":"+suffix)
	if !ok {
		return "", false
	}
	if cluster {
		inner, ok := strings.CutPrefix(name, "{")
		if !ok {
			return "", false
		}
		if name, ok = strings.CutSuffix(inner, "}"); !ok {
			return "", false
		}
	}
	if name == "" || strings.ContainsAny(name, "{}") {
		return "", false
	}
	return name, true
}

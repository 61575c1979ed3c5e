package mq

import (
	"fmt"
	"time"
)

// Worker defaults.
const (
	// DefaultLockTime is the default lock time of a message: 30 seconds,
	// renewed while the handler runs (Carmine's is 60 minutes, without
	// renewal), so that the messages of a worker that died are handed out
	// again within about half a minute.
	DefaultLockTime = 30 * time.Second
	// DefaultMonitorMaxQueueSize is the queue size over which the default
	// monitor warns.
	DefaultMonitorMaxQueueSize = 1000
	// DefaultMonitorWarnEvery is how often at most the default monitor
	// warns.
	DefaultMonitorWarnEvery = 6 * time.Hour
	// DefaultLogSummaryEvery is how often at most a worker logs its
	// summary line.
	DefaultLogSummaryEvery = time.Minute
)

// WorkerConfig configures a [Worker]. Handler is required; every other
// field has a default.
type WorkerConfig struct {
	// Handler handles each message. Required.
	Handler Handler

	// Middleware wraps Handler, in order: the first is the outermost, the
	// first to see each message and the last to see its answer (see
	// [Chain]). A panic in a middleware is recovered as a handler's is.
	// Default: none.
	Middleware []Middleware

	// Monitor is called on every loop turn with the queue size and what the
	// poll did. Default: QueueSizeMonitor(DefaultMonitorMaxQueueSize,
	// DefaultMonitorWarnEvery), a warning when more than 1000 messages wait,
	// at most every 6 hours. It is called from every polling loop,
	// concurrently.
	Monitor MonitorFunc

	// LockTime is how long a message stays locked after a poll took it,
	// unless it was enqueued with its own, before it is taken for stalled
	// and handed out again; renewal pushes it forward while the handler
	// runs. It bounds how long the messages of a worker that died (those
	// its handlers had, and those it had prefetched) wait to be handed out
	// again. Default: DefaultLockTime (30 s).
	LockTime time.Duration

	// MaxAttempts is how many times a failing message is handed out: a
	// handler error on the last attempt makes the message a dead letter
	// (Inspector.DeadLetters), as does an error marked Final on any attempt;
	// on an earlier attempt the message is queued again after RetryBackoff.
	// Default: DefaultMaxAttempts (10). A negative value retries without
	// limit.
	MaxAttempts int

	// RetryBackoff gives the wait before the next attempt after a failed
	// attempt n (from 1), counted on the Redis server's clock. Default:
	// DefaultRetryBackoff (1 s doubling up to 1 h, with jitter).
	RetryBackoff Backoff

	// QuarantineAfter makes a message a dead letter, with the reason
	// "quarantined", once it was handed out that many times without any
	// outcome recorded (the processes of its handlers died, a kill for
	// one), instead of handing it out again. A message lost once is
	// handed out again only alone, to a worker holding nothing else, and
	// only its first loss and its losses alone count, so the messages
	// that die with a poison one in its process are not buried with it
	// (docs/protocol.md §11, Quarantine). Default: DefaultQuarantineAfter
	// (5). A negative value never quarantines.
	QuarantineAfter int

	// DeadLetterMaxCount and DeadLetterMaxAge bound the queue's dead
	// letters: the oldest beyond the count, and those older than the age,
	// are dropped as new ones come. Defaults: DefaultDeadLetterMaxCount
	// (10,000) and DefaultDeadLetterMaxAge (30 days). A negative value
	// takes the bound away.
	DeadLetterMaxCount int
	DeadLetterMaxAge   time.Duration

	// ResultMaxCount and ResultMaxAge bound the queue's results
	// (Message.SetResult, docs/protocol.md §21): the oldest beyond the
	// count, and those older than the age, are dropped as new ones come,
	// at most 100 of each per call. Defaults: DefaultResultMaxCount
	// (10,000) and DefaultResultMaxAge (24 hours). A negative value takes
	// the bound away.
	ResultMaxCount int
	ResultMaxAge   time.Duration

	// EndOfQueueBackoff gives the end-of-queue sleep after n dry laps in a
	// row (n from 0 to 4). An enqueue cuts the sleep short. Use Constant for
	// a fixed time. Times under 10 ms count as 10 ms, so that an idle worker
	// never spins. Default: DefaultEndOfQueueBackoff (0.5 s up to 16 s).
	EndOfQueueBackoff Backoff

	// Throttle gives a pause after every poll, as a function of the queue
	// size; a throttled worker takes one message per poll and does not
	// prefetch, so the pause paces messages: each polling loop handles at
	// most one message per pause. Use Constant for a fixed pause, or
	// DefaultThrottle for Carmine's. It is called from every polling loop,
	// concurrently. Default: nil, no pause.
	Throttle Backoff

	// WorkerThreads is the number of polling loops. Default: 1.
	WorkerThreads int

	// HandlerThreads is the number of messages handled at once. Default: 1.
	HandlerThreads int

	// Prefetch is how many messages the worker may take beyond those its
	// handlers are busy with, so that a poll can take several at once and
	// handlers need not wait a round trip for the next. A prefetched message
	// is locked (and its attempt counted) from the poll on. The worker
	// prefetches only while handlings are quick (under 10 ms on average
	// lately) and LockTime is at least 10 s; a message that waited more
	// than a quarter of its lock time (and 10 ms), one whose poll took so
	// long that less than a quarter of its lock time is left, and any
	// still waiting when the worker stops, are given back unhandled:
	// unlocked, their attempt uncounted, first in line.
	//
	// While prefetching, and while polls come back full (the queue holds
	// more than they could take), the worker keeps a second poll in
	// flight, so that Redis runs one while the worker hands out the other's
	// messages; it stops once a poll comes back short. A worker with a
	// Throttle keeps to its polling loops.
	//
	// Default: 0, which means max(32, HandlerThreads); a negative value
	// turns prefetching off.
	Prefetch int

	// NoLockRenewal turns renewal off. By default a message's lock is
	// pushed forward every third of its lock time while its handler runs,
	// so that a short lock time recovers from crashed workers quickly while
	// long handlings still run once. If renewal fails for longer than the
	// lock time, or the lock is lost, the handler's context is cancelled.
	// Without renewal, LockTime must exceed the longest handling.
	NoLockRenewal bool

	// Observer, if set, is told of every handling as it ends, with its
	// handling time, its queueing time and its outcome (see [Observer]).
	// Default: nil.
	Observer Observer

	// LogSummaryEvery is how often the worker logs, at Info, a summary of
	// what it did since its last one: counts of handlings by outcome,
	// their rates per second, messages lost, abandoned or given back,
	// failed polls and the queue size. No line is logged for a time in
	// which nothing was handled. Default: DefaultLogSummaryEvery (a
	// minute); a negative value turns the summary off.
	LogSummaryEvery time.Duration

	// NoScheduler stops the worker from running a scheduler of its
	// queue's schedules (see [Scheduler]): without it, every worker
	// enqueues the ticks that come due while it runs (each tick once,
	// however many workers run), costing an idle worker one script call
	// every 2 s while the queue has schedules, one every 10 s while it has
	// none. Default: false.
	NoScheduler bool

	// ScheduleCatchUp is the worker's scheduler's SchedulerConfig.CatchUp.
	// Default: DefaultScheduleCatchUp (a minute). An Observer that is a
	// TickObserver is told of each tick the scheduler takes.
	ScheduleCatchUp time.Duration

	// heartbeatEvery and heartbeatTTL set the worker's heartbeat (see
	// heartbeat.go), for tests: every heartbeatEvery, living heartbeatTTL.
	heartbeatEvery, heartbeatTTL time.Duration

	// renewEvery, for tests, renews a running handling's lock at this
	// period instead of every third of its lock time: renewals that come
	// often next to a lock too long for any stall of a loaded machine to
	// let it run out.
	renewEvery time.Duration

	// sleepChunk, for tests, is the longest blocking call of a sleep on
	// the worker's own connection (engine.FetcherConfig.SleepChunk).
	sleepChunk time.Duration
}

// defaultPrefetch is the least default prefetch depth.
const defaultPrefetch = 32

func (c *WorkerConfig) withDefaults() WorkerConfig {
	var out WorkerConfig
	if c != nil {
		out = *c
	}
	if out.Monitor == nil {
		out.Monitor = QueueSizeMonitor(DefaultMonitorMaxQueueSize, DefaultMonitorWarnEvery)
	}
	if out.LockTime == 0 {
		out.LockTime = DefaultLockTime
	}
	if out.EndOfQueueBackoff == nil {
		out.EndOfQueueBackoff = DefaultEndOfQueueBackoff
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = DefaultMaxAttempts
	}
	if out.RetryBackoff == nil {
		out.RetryBackoff = DefaultRetryBackoff
	}
	if out.QuarantineAfter == 0 {
		out.QuarantineAfter = DefaultQuarantineAfter
	}
	if out.DeadLetterMaxCount == 0 {
		out.DeadLetterMaxCount = DefaultDeadLetterMaxCount
	}
	if out.DeadLetterMaxAge == 0 {
		out.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if out.ResultMaxCount == 0 {
		out.ResultMaxCount = DefaultResultMaxCount
	}
	if out.ResultMaxAge == 0 {
		out.ResultMaxAge = DefaultResultMaxAge
	}
	if out.WorkerThreads == 0 {
		out.WorkerThreads = 1
	}
	if out.HandlerThreads == 0 {
		out.HandlerThreads = 1
	}
	if out.Prefetch == 0 {
		out.Prefetch = max(defaultPrefetch, out.HandlerThreads)
	}
	if out.LogSummaryEvery == 0 {
		out.LogSummaryEvery = DefaultLogSummaryEvery
	}
	if out.ScheduleCatchUp == 0 {
		out.ScheduleCatchUp = DefaultScheduleCatchUp
	}
	if out.heartbeatEvery == 0 {
		out.heartbeatEvery = heartbeatEvery
	}
	if out.heartbeatTTL == 0 {
		out.heartbeatTTL = heartbeatTTL
	}
	return out
}

func (c *WorkerConfig) validate() error {
	switch {
	case c.Handler == nil:
		return fmt.Errorf("%w: Handler is nil", ErrInvalidOption)
	case c.LockTime < time.Millisecond:
		return fmt.Errorf("%w: LockTime %v is under 1ms", ErrInvalidOption, c.LockTime)
	case c.WorkerThreads < 0:
		return fmt.Errorf("%w: WorkerThreads %d is negative", ErrInvalidOption, c.WorkerThreads)
	case c.HandlerThreads < 0:
		return fmt.Errorf("%w: HandlerThreads %d is negative", ErrInvalidOption, c.HandlerThreads)
	case c.ScheduleCatchUp < 0:
		return fmt.Errorf("%w: ScheduleCatchUp %v is negative", ErrInvalidOption, c.ScheduleCatchUp)
	}
	return nil
}

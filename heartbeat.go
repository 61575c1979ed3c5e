package mq

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/gocarmine/mq/internal/engine"
	"github.com/gocarmine/mq/internal/protocol"
)

// Heartbeats (docs/protocol.md §12): a running worker beats every
// heartbeatEvery, and its entry runs out heartbeatTTL after its last beat,
// so a worker whose process died leaves the listing within heartbeatTTL.
// Three beats may fail in a row before a live worker looks dead.
const (
	heartbeatEvery = 5 * time.Second
	heartbeatTTL   = 20 * time.Second
)

// LiveWorker is one running worker of a queue, in any process, as its
// heartbeat in Redis tells it (docs/protocol.md §12). Times are by the
// Redis server's clock. It marshals to JSON as it is.
type LiveWorker struct {
	// ID identifies the worker: Worker.ID.
	ID string `json:"id"`
	// Queue is the queue's name.
	Queue string `json:"queue"`
	// Host and PID are the worker's machine (os.Hostname) and process.
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Version is the worker's library version ([Version]).
	Version string `json:"version"`
	// Started is when the worker's current run started.
	Started time.Time `json:"started"`
	// LastPoll is when its last poll that Redis answered came back; zero
	// before the first.
	LastPoll time.Time `json:"last_poll,omitzero"`
	// LastBeat is when its last heartbeat reached Redis, and Expires when
	// the entry runs out unless another one comes.
	LastBeat time.Time `json:"last_beat"`
	Expires  time.Time `json:"expires"`
	// HandlersBusy is how many of its HandlerThreads ran a handler at its
	// last beat; WorkerThreads is its number of polling loops.
	HandlersBusy   int `json:"handlers_busy"`
	HandlerThreads int `json:"handler_threads"`
	WorkerThreads  int `json:"worker_threads"`
	// Handled counts the handlings whose outcome Redis recorded, since
	// the worker was made (or ResetStats), at its last beat: Succeeded,
	// Retried, Failed and Dead; Failed counts the last two. Two
	// readings apart give the worker's throughput.
	Handled int64 `json:"handled"`
	Failed  int64 `json:"failed"`
	// Outcomes counts its handlings by outcome at its last beat, in the
	// terms of Counts.Of, since the worker was made (or ResetStats):
	// OutcomeSucceeded, OutcomeRetried, OutcomeFailed, OutcomeDead,
	// OutcomeLockLost and OutcomeAbandoned. It is nil for a worker of a
	// version that does not tell them.
	Outcomes map[Outcome]int64 `json:"outcomes,omitempty"`
	// HandlingP50, HandlingP99 and QueueingP99 are percentiles of its
	// latest 1,000 handling and queueing times (WorkerStats), 0 before
	// the first.
	HandlingP50 time.Duration `json:"handling_p50"`
	HandlingP99 time.Duration `json:"handling_p99"`
	QueueingP99 time.Duration `json:"queueing_p99"`
	// Queues are the queues of a multi-queue worker ([MultiWorker]), this
	// one among them, in its order, with their weights; Strict tells its
	// order. Its HandlerThreads and HandlersBusy are those of all its
	// queues together. Nil for a worker of one queue.
	Queues []QueueWeight `json:"queues,omitempty"`
	Strict bool          `json:"strict,omitempty"`
}

// heartbeatInfo is what a worker stores of itself in worker-info, as JSON
// (docs/protocol.md §12). Its times are durations before the beat, so that
// they read by the server's clock whatever the worker's clock says: the
// beat's time is the entry's expiry less ttl_ms.
type heartbeatInfo struct {
	Queue          string `json:"queue"`
	Host           string `json:"host"`
	PID            int    `json:"pid"`
	Version        string `json:"version"`
	UptimeMS       int64  `json:"uptime_ms"`
	SincePollMS    int64  `json:"since_poll_ms"` // -1 before the first poll
	HandlersBusy   int    `json:"handlers_busy"`
	HandlerThreads int    `json:"handler_threads"`
	WorkerThreads  int    `json:"worker_threads"`
	TTLMS          int64  `json:"ttl_ms"`
	Handled        int64  `json:"handled"`
	Failed         int64  `json:"failed"`
	// Outcomes counts handlings by outcome (Counts.Of).
	Outcomes      map[Outcome]int64 `json:"outcomes,omitempty"`
	HandlingP50NS int64             `json:"handling_p50_ns"`
	HandlingP99NS int64             `json:"handling_p99_ns"`
	QueueingP99NS int64             `json:"queueing_p99_ns"`
	// Queues and Strict: a multi-queue worker's (LiveWorker.Queues).
	Queues []QueueWeight `json:"queues,omitempty"`
	Strict bool          `json:"strict,omitempty"`
}

// hostname is this machine's name, as the heartbeats tell it.
var hostname = func() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}()

// liveWorkers answers Inspector.Workers.
func (c *Client) liveWorkers(ctx context.Context, queue string) ([]LiveWorker, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	type answer struct {
		now     int64
		entries []protocol.WorkerEntry
	}
	a, err := within(c, ctx, func(ctx context.Context) (answer, error) {
		now, es, err := protocol.LiveWorkers(ctx, c.rdb, c.keys(queue))
		return answer{now, es}, err
	})
	if err != nil {
		return nil, fmt.Errorf("mq: workers of %q: %w", queue, redisError(err))
	}
	out := make([]LiveWorker, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, liveWorker(queue, e))
	}
	slices.SortFunc(out, func(x, y LiveWorker) int {
		return cmp.Or(x.Started.Compare(y.Started), cmp.Compare(x.ID, y.ID))
	})
	return out, nil
}

// liveWorker reads one entry. An entry whose info does not parse (another
// version's, or damaged) still tells the worker's id and expiry.
func liveWorker(queue string, e protocol.WorkerEntry) LiveWorker {
	lw := LiveWorker{ID: e.ID, Queue: queue, Expires: time.UnixMilli(e.Expires)}
	var info heartbeatInfo
	if json.Unmarshal(e.Info, &info) != nil {
		return lw
	}
	beat := e.Expires - info.TTLMS
	lw.Host, lw.PID, lw.Version = info.Host, info.PID, info.Version
	lw.LastBeat = time.UnixMilli(beat)
	lw.Started = time.UnixMilli(beat - info.UptimeMS)
	if info.SincePollMS >= 0 {
		lw.LastPoll = time.UnixMilli(beat - info.SincePollMS)
	}
	lw.HandlersBusy, lw.HandlerThreads, lw.WorkerThreads = info.HandlersBusy, info.HandlerThreads, info.WorkerThreads
	lw.Handled, lw.Failed, lw.Outcomes = info.Handled, info.Failed, info.Outcomes
	lw.HandlingP50, lw.HandlingP99 = time.Duration(info.HandlingP50NS), time.Duration(info.HandlingP99NS)
	lw.QueueingP99 = time.Duration(info.QueueingP99NS)
	lw.Queues, lw.Strict = info.Queues, info.Strict
	return lw
}

// ID identifies the worker among every worker of every process: the id
// of its heartbeat ([Inspector.Workers]) and of its log lines (worker_id). It
// is drawn at random by NewWorker and kept across restarts.
func (w *Worker) ID() string { return w.id }

// notePoll records that a poll came back, for the heartbeat's last poll.
func (w *Worker) notePoll() {
	w.lastPoll.Store(int64(time.Since(w.epoch)) + 1)
}

// sincePoll is the time since the last poll that came back in this run,
// or -1 if none did.
func (w *Worker) sincePoll() time.Duration {
	at := w.lastPoll.Load()
	if at == 0 {
		return -1
	}
	return time.Since(w.epoch) - time.Duration(at-1)
}

// withPollNote wraps the worker's monitor, which every polling loop calls
// after each poll Redis answered, so that the heartbeat can tell the last
// poll.
func (w *Worker) withPollNote(m MonitorFunc) MonitorFunc {
	return func(ctx context.Context, info MonitorInfo) {
		w.notePoll()
		m(ctx, info)
	}
}

// heartbeat starts the heartbeat of run r, with the worker's summary
// line beside it (logs.go).
func (w *Worker) heartbeat(ctx context.Context, r *run) *engine.Heartbeat {
	// The first summary counts from the run's start.
	s := summarizer{w: w, last: r.startCounts, at: r.started}
	return engine.StartHeartbeat(ctx, (*queueStore)(w), engine.HeartbeatConfig{
		ID:    w.id,
		Every: w.cfg.heartbeatEvery,
		TTL:   w.cfg.heartbeatTTL,
		Info:  func() []byte { return w.heartbeatInfo(r) },
		Failed: func(err error) {
			w.log.Warn("mq: heartbeat failed; the worker may look dead to Inspector.Workers until one succeeds",
				slog.String("worker_id", w.id), slog.Any("error", err))
		},
		Recovered: func() {
			w.log.Info("mq: heartbeat recovered", slog.String("worker_id", w.id))
		},
		SummaryEvery: max(0, w.cfg.LogSummaryEvery),
		Summary:      s.log,
	})
}

// heartbeatInfo is the worker's entry as run r's heartbeat stores it.
func (w *Worker) heartbeatInfo(r *run) []byte {
	busy := r.executor.Busy()
	since := int64(-1)
	if d := w.sincePoll(); d >= 0 {
		since = d.Milliseconds()
	}
	st := w.Stats()
	n := st.Counts
	var queues []QueueWeight
	if w.multi != nil {
		queues = w.multi.queues
	}
	info, err := json.Marshal(heartbeatInfo{
		Queues:         queues,
		Strict:         w.multi != nil && w.multi.strict,
		Handled:        n.Succeeded + n.Retried + n.Failed + n.Dead + n.Cancelled,
		Failed:         n.Failed + n.Dead,
		Outcomes:       outcomeCounts(n),
		HandlingP50NS:  int64(st.HandlingTime.P50),
		HandlingP99NS:  int64(st.HandlingTime.P99),
		QueueingP99NS:  int64(st.QueueingTime.P99),
		Queue:          w.queue,
		Host:           hostname,
		PID:            os.Getpid(),
		Version:        Version,
		UptimeMS:       time.Since(r.started).Milliseconds(),
		SincePollMS:    since,
		HandlersBusy:   busy,
		HandlerThreads: w.cfg.HandlerThreads,
		WorkerThreads:  w.cfg.WorkerThreads,
		TTLMS:          protocol.MS(w.cfg.heartbeatTTL),
	})
	if err != nil {
		panic("mq: heartbeat info: " + err.Error()) // plain fields: never
	}
	return info
}

// handlingOutcomes are the outcomes a handling ends with, as Counts.Of
// counts them.
var handlingOutcomes = [...]Outcome{OutcomeSucceeded, OutcomeRetried, OutcomeFailed, OutcomeDead,
	OutcomeLockLost, OutcomeAbandoned, OutcomeCancelled}

// outcomeCounts are n by outcome, for the heartbeat.
func outcomeCounts(n Counts) map[Outcome]int64 {
	m := make(map[Outcome]int64, len(handlingOutcomes))
	for _, o := range handlingOutcomes {
		m[o] = n.Of(o)
	}
	return m
}

package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/gocarmine/mq"
)

// workerJSON is one live worker, as the page draws it. Times are
// milliseconds since the epoch by the Redis server's clock; last_poll_ms is
// 0 before the worker's first poll.
type workerJSON struct {
	ID string `json:"id"`
	// Queue is the worker's queue.
	Queue          string `json:"queue"`
	Host           string `json:"host"`
	PID            int    `json:"pid"`
	Version        string `json:"version"`
	StartedMS      int64  `json:"started_ms"`
	LastPollMS     int64  `json:"last_poll_ms"`
	LastBeatMS     int64  `json:"last_beat_ms"`
	Busy           int    `json:"busy"`
	HandlerThreads int    `json:"handler_threads"`
	WorkerThreads  int    `json:"worker_threads"`
	// Handled and Failed count the handlings the worker recorded at its
	// last beat (two readings give its throughput); the percentiles are of
	// its latest handling and queueing times, in ms.
	Handled       int64   `json:"handled"`
	Failed        int64   `json:"failed"`
	HandlingP50MS float64 `json:"handling_p50_ms"`
	HandlingP99MS float64 `json:"handling_p99_ms"`
	QueueingP99MS float64 `json:"queueing_p99_ms"`
	// Queues and Strict: a multi-queue worker's queues, with their
	// weights, and its order (mq.LiveWorker); absent for a worker of one
	// queue.
	Queues []mq.QueueWeight `json:"queues,omitempty"`
	Strict bool             `json:"strict,omitempty"`
}

// workersJSON is the answer of GET api/workers?queue=Q, and of GET
// api/workers (Queue empty: every queue's).
type workersJSON struct {
	Queue   string       `json:"queue"`
	Workers []workerJSON `json:"workers"`
}

// workers answers the queue's live workers, in every process, from their
// heartbeats (Inspector.Workers: one script call), oldest first; without
// a queue parameter, those of every queue (Inspector.AllWorkers: one
// script call per queue), by queue. An empty queue parameter is refused
// as a bad name.
func (h *handler) workers(w http.ResponseWriter, r *http.Request) {
	all := !r.URL.Query().Has("queue")
	q := r.URL.Query().Get("queue")
	if err := mq.ValidateQueueName(q); err != nil && !all {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	var live []mq.LiveWorker
	var err error
	if all {
		live, err = h.client.Inspector().AllWorkers(ctx)
	} else {
		live, err = h.client.Inspector().Workers(ctx, q)
	}
	if err != nil {
		h.log.ErrorContext(ctx, "live workers", "queue", q, "error", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := workersJSON{Queue: q, Workers: make([]workerJSON, 0, len(live))}
	for _, lw := range live {
		out.Workers = append(out.Workers, workerJSON{
			ID:             lw.ID,
			Queue:          lw.Queue,
			Host:           lw.Host,
			PID:            lw.PID,
			Version:        lw.Version,
			StartedMS:      millis(lw.Started),
			LastPollMS:     millis(lw.LastPoll),
			LastBeatMS:     millis(lw.LastBeat),
			Busy:           lw.HandlersBusy,
			HandlerThreads: lw.HandlerThreads,
			WorkerThreads:  lw.WorkerThreads,
			Handled:        lw.Handled,
			Failed:         lw.Failed,
			HandlingP50MS:  ms(lw.HandlingP50),
			HandlingP99MS:  ms(lw.HandlingP99),
			QueueingP99MS:  ms(lw.QueueingP99),
			Queues:         lw.Queues,
			Strict:         lw.Strict,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// millis is t in milliseconds since the epoch, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

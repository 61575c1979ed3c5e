package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
)

// The per-minute chart: a queue's handlings per minute, processed and
// failed, as the workers of every process recorded them in Redis
// (Inspector.History, docs/protocol.md §17). Unlike the counts' chart,
// which holds what this handler saw while someone looked, it covers the
// hour before the page was opened, and every dashboard reads the same.

// defaultMinutes is how many minutes the chart shows unless asked.
const defaultMinutes = 60

// minuteJSON is one minute of a queue's history.
type minuteJSON struct {
	// T is when the minute began, in Unix milliseconds by the Redis
	// server's clock.
	T         int64 `json:"t"`
	Processed int64 `json:"processed"`
	Failed    int64 `json:"failed"`
	Dead      int64 `json:"dead"`
}

// minutesJSON is the answer of GET api/minutes?queue=Q&minutes=N.
type minutesJSON struct {
	Queue string `json:"queue"`
	// Minutes are oldest first, one a minute, the current (unfinished)
	// minute last.
	Minutes []minuteJSON `json:"minutes"`
}

// minutes answers the queue's last minutes (?minutes=N, default 60, at
// most a day): one script call, whatever the queue's length.
func (h *handler) minutes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queue := q.Get("queue")
	if err := mq.ValidateQueueName(queue); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := defaultMinutes
	if s := q.Get("minutes"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			writeError(w, http.StatusBadRequest, "minutes: a positive number")
			return
		}
		n = min(v, int(mq.HistoryWindow/time.Minute))
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	// since is by this process's clock and the minutes by Redis's: a skew
	// between them shifts the window, not what it holds.
	since := h.now().Add(-time.Duration(n-1) * time.Minute)
	hist, err := h.client.Inspector().History(ctx, queue, since)
	if err != nil {
		h.log.ErrorContext(ctx, "history", "queue", queue, "error", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := minutesJSON{Queue: queue, Minutes: make([]minuteJSON, len(hist))}
	for i, m := range hist {
		out.Minutes[i] = minuteJSON{T: m.Start.UnixMilli(), Processed: m.Processed, Failed: m.Failed, Dead: m.Dead}
	}
	writeJSON(w, http.StatusOK, out)
}

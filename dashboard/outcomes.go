package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gocarmine/mq"
)

// The queue's history per minute as the workers keep it in Redis
// (Inspector.History, docs/protocol.md §17): unlike the page's chart of
// counts (history.go), it is there whether or not a page was open, and
// every process reads the same.

// outcomeMinuteJSON is one minute of a queue's history. StartMS is when
// the minute began, Unix ms by the Redis server's clock.
type outcomeMinuteJSON struct {
	StartMS int64 `json:"start_ms"`
	// Processed counts the handlings recorded (succeeded, retried, failed
	// or dead), Failed those of them not succeeded, Dead the dead letters
	// written (quarantines included).
	Processed int64 `json:"processed"`
	Failed    int64 `json:"failed"`
	Dead      int64 `json:"dead"`
}

// outcomesJSON is the answer of GET api/history?queue=Q&minutes=N.
type outcomesJSON struct {
	Queue string `json:"queue"`
	// Minutes are the last N minutes, oldest first, one a minute, the
	// last one still running.
	Minutes []outcomeMinuteJSON `json:"minutes"`
}

// defaultHistoryMinutes is how many minutes api/history answers unless
// asked.
const defaultHistoryMinutes = 60

// outcomeHistory answers the queue's last minutes=N minutes (default 60,
// at most a day) of history from Redis: one script call.
func (h *handler) outcomeHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queue := q.Get("queue")
	if err := mq.ValidateQueueName(queue); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	minutes := defaultHistoryMinutes
	if s := q.Get("minutes"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > int(mq.HistoryWindow/time.Minute) {
			writeError(w, http.StatusBadRequest, "minutes must be a whole number from 1 to "+strconv.Itoa(int(mq.HistoryWindow/time.Minute)))
			return
		}
		minutes = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	hist, err := h.client.Inspector().RecentHistory(ctx, queue, time.Duration(minutes)*time.Minute)
	if err != nil {
		h.log.ErrorContext(ctx, "history", "queue", queue, "error", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := outcomesJSON{Queue: queue, Minutes: make([]outcomeMinuteJSON, len(hist))}
	for i, m := range hist {
		out.Minutes[i] = outcomeMinuteJSON{StartMS: m.Start.UnixMilli(), Processed: m.Processed, Failed: m.Failed, Dead: m.Dead}
	}
	writeJSON(w, http.StatusOK, out)
}

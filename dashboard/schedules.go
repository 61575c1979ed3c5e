package dashboard

import (
	"context"
	"errors"
	"net/http"

	"github.com/gocarmine/mq"
)

// scheduleJSON is one periodic schedule of a queue, as the page draws it:
// read-only (schedules are set by the library). next_ms is the next
// tick's time in ms since the epoch by the Redis server's clock, 0 while
// paused.
type scheduleJSON struct {
	Name   string `json:"name"`
	Cron   string `json:"cron,omitempty"`
	Every  string `json:"every,omitempty"`
	Zone   string `json:"zone,omitempty"`
	Paused bool   `json:"paused"`
	NextMS int64  `json:"next_ms"`
	// Size is the stored message's length in bytes.
	Size int `json:"size"`
}

// schedulesJSON is the answer of GET api/schedules?queue=Q.
type schedulesJSON struct {
	Queue     string         `json:"queue"`
	Schedules []scheduleJSON `json:"schedules"`
}

// schedules answers the queue's schedules (Inspector.Schedules: one
// script call), by name.
func (h *handler) schedules(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("queue")
	if err := mq.ValidateQueueName(q); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	list, err := h.client.Inspector().Schedules(ctx, q)
	if err == nil && len(list) == 0 {
		// None: a queue that does not exist answers 404.
		err = h.queueMustExist(ctx, q)
	}
	if errors.Is(err, mq.ErrQueueNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		h.log.ErrorContext(ctx, "schedules", "queue", q, "error", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := schedulesJSON{Queue: q, Schedules: make([]scheduleJSON, 0, len(list))}
	for _, s := range list {
		v := scheduleJSON{Name: s.Name, Cron: s.Cron, Zone: s.Zone, Paused: s.Paused, NextMS: millis(s.Next), Size: len(s.Message)}
		if s.Every > 0 {
			v.Every = s.Every.String()
		}
		out.Schedules = append(out.Schedules, v)
	}
	writeJSON(w, http.StatusOK, out)
}

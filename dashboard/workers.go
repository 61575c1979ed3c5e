package dashboard

import "net/http"

// workersAvailable tells the page whether it may show live workers.
//
// MARKED PLACE (issue 13, item 1): the core's Client.Workers(ctx, queue),
// which lists the workers whose heartbeat is live, is not there yet. When
// it lands, set this true and fill workers below from it (host, process,
// worker id, start, last poll, handlers busy, version); the page's
// "Workers" panel (assets/app.js, renderWorkers) already draws a list of
// them.
const workersAvailable = false

// workerJSON is one live worker, as the page draws it.
type workerJSON struct {
	ID         string `json:"id"`
	Host       string `json:"host"`
	PID        int    `json:"pid"`
	StartedMS  int64  `json:"started_ms"`
	LastPollMS int64  `json:"last_poll_ms"`
	Busy       int    `json:"busy"`
	Version    string `json:"version"`
}

// workersJSON is the answer of GET api/workers?queue=Q.
type workersJSON struct {
	Available bool         `json:"available"`
	Workers   []workerJSON `json:"workers"`
	Note      string       `json:"note,omitempty"`
}

// workers answers the queue's live workers (a placeholder for now).
func (h *handler) workers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, workersJSON{
		Available: workersAvailable,
		Workers:   []workerJSON{},
		Note:      "live workers come with the core's Client.Workers",
	})
}

package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gocarmine/mq"
)

// Dead letters: messages that failed for good (their handler failed on the
// last attempt or with mq.Final, or they were quarantined), kept by the
// core with their last error apart from the queue. The panel lists them a
// page at a time (Inspector.DeadLetters, newest first, O(log n + page), by
// cursor), and,
// with actions allowed, requeues or deletes one or all of them.

// errBadAction reports an action body that does not say what to act on.
var errBadAction = errors.New("bad action")

// deadJSON is one dead letter, as the page draws it.
type deadJSON struct {
	ID string `json:"id"`
	// Reason is mq.OutcomeDead or mq.OutcomeQuarantined.
	Reason   string `json:"reason"`
	Error    string `json:"error"`
	Attempts int64  `json:"attempts"`
	// DiedMS and FirstEnqueuedMS are Unix milliseconds by the Redis
	// server's clock; FirstEnqueuedMS is 0 when unknown.
	DiedMS          int64  `json:"died_ms"`
	FirstEnqueuedMS int64  `json:"first_enqueued_ms"`
	Size            int    `json:"size"`
	Content         string `json:"content"`
	DecodeError     string `json:"decode_error,omitempty"`
	Truncated       bool   `json:"truncated,omitempty"`
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first, the last included (none for dead letters of mq v0.1.0).
	AttemptErrors []attemptErrorJSON `json:"attempt_errors"`
}

// attemptErrorJSON is one failed attempt of a message (api/message) or of
// a dead letter's (api/dead); AtMS is Unix ms by the Redis server's clock.
type attemptErrorJSON struct {
	Attempt int64  `json:"attempt"`
	AtMS    int64  `json:"at_ms"`
	Error   string `json:"error"`
}

// deadPageJSON is the answer of GET api/dead?queue=Q&cursor=C.
type deadPageJSON struct {
	Queue string `json:"queue"`
	// Total is how many dead letters the queue has.
	Total   int64      `json:"total"`
	Letters []deadJSON `json:"letters"`
	// Cursor continues the listing (the library's dead-letter cursor);
	// "" at its end.
	Cursor string `json:"cursor"`
}

// deadLetters answers one page of the queue's dead letters, newest first:
// ?queue=Q&cursor=C (limit=N asks for N, at most mq.MaxPageSize;
// default Options.PageSize).
func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queue, limit, ok := h.pageQuery(w, q)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	in := h.client.Inspector()
	page, err := in.DeadLetters(ctx, queue, q.Get("cursor"), limit)
	var counts mq.QueueCounts
	if err == nil {
		counts, err = in.QueueCounts(ctx, queue)
	}
	if err != nil {
		status := http.StatusBadGateway
		if isBadInput(err) {
			status = http.StatusBadRequest
		} else {
			h.log.ErrorContext(ctx, "dead letters", "queue", queue, "error", err)
		}
		writeError(w, status, err.Error())
		return
	}
	letters := page.Items
	out := deadPageJSON{Queue: queue, Total: counts.Dead, Cursor: page.Cursor, Letters: make([]deadJSON, len(letters))}
	for i := range letters {
		d := &letters[i]
		dj := deadJSON{
			ID:       d.ID,
			Reason:   string(d.Reason),
			Error:    d.Error,
			Attempts: d.Attempts,
			DiedMS:   d.Died.UnixMilli(),
			Size:     len(d.Data),

			AttemptErrors: make([]attemptErrorJSON, len(d.AttemptErrors)),
		}
		for j, e := range d.AttemptErrors {
			dj.AttemptErrors[j] = attemptErrorJSON{Attempt: e.Attempt, AtMS: e.At.UnixMilli(), Error: e.Error}
		}
		if !d.FirstEnqueued.IsZero() {
			dj.FirstEnqueuedMS = d.FirstEnqueued.UnixMilli()
		}
		var v any
		if err := d.Decode(&v); err != nil {
			dj.DecodeError = err.Error()
			dj.Content, dj.Truncated = rawPreview(d.Data, h.opts.MaxContent)
		} else {
			dj.Content, dj.Truncated = renderValue(v, h.opts.MaxContent)
		}
		out.Letters[i] = dj
	}
	writeJSON(w, http.StatusOK, out)
}

// oneOrAll checks that a dead-letter action names one id or asks for all.
func oneOrAll(b actionBody) error {
	if (b.ID == "") == !b.All {
		return fmt.Errorf("%w: name one dead letter (id) or ask for all (all: true)", errBadAction)
	}
	return nil
}

// requeueDead moves one dead letter, or all of the queue's, back into the
// queue as fresh messages. One whose id the queue holds already is kept:
// for one, a conflict (mq.ErrAlreadyQueued); for all, counted in Kept.
func (h *handler) requeueDead(ctx context.Context, b actionBody) (actionResult, error) {
	if err := oneOrAll(b); err != nil {
		return actionResult{}, err
	}
	if b.All {
		requeued, kept, err := h.client.Inspector().RequeueDeadLetters(ctx, b.Queue, nil)
		res := actionResult{Changed: requeued > 0, Count: int64(requeued), Kept: int64(kept)}
		if err != nil {
			return res, fmt.Errorf("after %d requeued: %w", requeued, err)
		}
		return res, nil
	}
	switch err := h.client.Inspector().RequeueDeadLetter(ctx, b.Queue, b.ID); {
	case errors.Is(err, mq.ErrNoDeadLetter):
		return actionResult{}, nil
	case err != nil:
		return actionResult{}, err
	}
	return actionResult{Changed: true, Count: 1}, nil
}

// deleteDead deletes one dead letter, or all of the queue's.
func (h *handler) deleteDead(ctx context.Context, b actionBody) (actionResult, error) {
	if err := oneOrAll(b); err != nil {
		return actionResult{}, err
	}
	if b.All {
		n, err := h.client.Inspector().DeleteDeadLetters(ctx, b.Queue)
		return actionResult{Changed: n > 0, Count: n}, err
	}
	ok, err := h.client.Inspector().DeleteDeadLetter(ctx, b.Queue, b.ID)
	res := actionResult{Changed: ok}
	if ok {
		res.Count = 1
	}
	return res, err
}

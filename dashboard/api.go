package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/gocarmine/mq"
)

// features tells the page which parts the library under it has.
type features struct {
	// Workers: the page shows live workers (Inspector.Workers, see
	// workers.go); always true since the core lists them.
	Workers bool `json:"workers"`
	// DeadLetters: the client keeps dead letters (see dead.go); always
	// true since the core keeps them, kept for the page and for scripts.
	DeadLetters bool `json:"dead_letters"`
}

// overviewJSON is the answer of GET api/overview.
type overviewJSON struct {
	Title      string      `json:"title"`
	Actions    bool        `json:"actions"`
	Features   features    `json:"features"`
	IntervalMS int64       `json:"interval_ms"`
	Now        int64       `json:"now"`
	Queues     []queueJSON `json:"queues"`
}

// queueJSON is one queue of the overview.
type queueJSON struct {
	Name    string   `json:"name"`
	Counts  *counts  `json:"counts,omitempty"`
	Error   string   `json:"error,omitempty"`
	History []sample `json:"history"`
	// Limits are the queue's limits and their use (docs/protocol.md §19),
	// absent when it has none.
	Limits *limitsJSON `json:"limits,omitempty"`
}

// limitsJSON is a queue's limits as the page shows them: rates as
// mq.Rate.String spells them ("none" for none), concurrency 0 for none.
type limitsJSON struct {
	Rate           string `json:"rate"`
	KeyRate        string `json:"key_rate"`
	Concurrency    int    `json:"concurrency"`
	KeyConcurrency int    `json:"key_concurrency"`
	SlotsHeld      int64  `json:"slots_held"`
	Parked         int64  `json:"parked"`
}

// queueLimits reads queue's limits (one round trip of three O(1) reads),
// nil when it has none and none are in use.
func (h *handler) queueLimits(ctx context.Context, queue string) (*limitsJSON, error) {
	st, err := h.client.Inspector().Limits(ctx, queue)
	if err != nil || (st.Limits == mq.Limits{} && st.SlotsHeld == 0 && st.Parked == 0) {
		return nil, err
	}
	return &limitsJSON{Rate: st.Limits.Rate.String(), KeyRate: st.Limits.KeyRate.String(),
		Concurrency: st.Limits.Concurrency, KeyConcurrency: st.Limits.KeyConcurrency,
		SlotsHeld: st.SlotsHeld, Parked: st.Parked}, nil
}

// countReaders bounds the queues whose counts one overview reads at once.
const countReaders = 8

// overview answers every queue with its counts now and its history.
func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	names, err := h.queueNames(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "queue names", "error", err)
		writeError(w, http.StatusBadGateway, err.Error())
		return
	}
	out := overviewJSON{
		Title:      h.opts.Title,
		Actions:    h.opts.AllowActions,
		Features:   features{Workers: true, DeadLetters: true},
		IntervalMS: h.opts.Interval.Milliseconds(),
		Now:        h.now().UnixMilli(),
		Queues:     make([]queueJSON, len(names)),
	}
	sem := make(chan struct{}, countReaders)
	var wg sync.WaitGroup
	for i, q := range names {
		out.Queues[i].Name = q
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := h.queueCounts(ctx, q)
			var gone bool
			if err == nil {
				gone, err = h.gone(ctx, q, c)
			}
			switch {
			case err != nil:
				h.log.ErrorContext(ctx, "queue counts", "queue", q, "error", err)
				out.Queues[i].Error = err.Error()
				out.Queues[i].History = h.hist.samples(q)
			case gone:
				out.Queues[i].Name = "" // cleared: left out below
			default:
				out.Queues[i].Counts = &c
				out.Queues[i].History = h.hist.record(q, h.now(), c)
				if c.limited { // (a queue without limits spares their read)
					l, err := h.queueLimits(ctx, q)
					if err != nil {
						h.log.ErrorContext(ctx, "queue limits", "queue", q, "error", err)
					}
					out.Queues[i].Limits = l
				}
			}
		}()
	}
	wg.Wait()
	out.Queues = slices.DeleteFunc(out.Queues, func(q queueJSON) bool { return q.Name == "" })
	writeJSON(w, http.StatusOK, out)
}

// messageJSON is one message of a page.
type messageJSON struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Attempts  int64  `json:"attempts"`
	BackoffMS int64  `json:"backoff_ms"`
	AgeMS     int64  `json:"age_ms"`
	// Size is the stored message's length in bytes.
	Size int `json:"size"`
	// Content is the decoded message rendered as JSON text, or, when it
	// could not be decoded, a quoted preview of its bytes.
	Content string `json:"content"`
	// DecodeError says why the content could not be decoded, if so.
	DecodeError string `json:"decode_error,omitempty"`
	// Truncated tells that Content was cut at Options.MaxContent.
	Truncated bool `json:"truncated,omitempty"`
	// Empty tells that the stored content is empty: a message handled in
	// its dedupe window (done-with-backoff) keeps none.
	Empty bool `json:"empty,omitempty"`
	// Policy is the message's own policy in words (mq.Policy.String),
	// empty for none.
	Policy string `json:"policy,omitempty"`
	// Priority is the message's priority, "high" or "low"
	// (mq.Priority.String), empty for normal.
	Priority string `json:"priority,omitempty"`
}

// messagesJSON is the answer of GET api/messages.
type messagesJSON struct {
	Queue    string        `json:"queue"`
	Messages []messageJSON `json:"messages"`
	// Cursor continues the listing; "" at its end.
	Cursor string `json:"cursor"`
}

// pageQuery reads a page request's queue and limit (at most
// mq.MaxPageSize; default Options.PageSize), answering 400 and false
// when either is bad.
func (h *handler) pageQuery(w http.ResponseWriter, q url.Values) (queue string, limit int, ok bool) {
	queue = q.Get("queue")
	if err := mq.ValidateQueueName(queue); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", 0, false
	}
	limit = h.opts.PageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit: a positive number")
			return "", 0, false
		}
		limit = min(n, mq.MaxPageSize)
	}
	return queue, limit, true
}

// messages answers one page of a queue's messages: ?queue=Q&cursor=C
// (limit=N asks for N, at most mq.MaxPageSize; default
// Options.PageSize).
func (h *handler) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queue, limit, ok := h.pageQuery(w, q)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	page, err := h.client.Inspector().QueueMessages(ctx, queue, q.Get("cursor"), limit)
	if err != nil {
		status := http.StatusBadGateway
		if isBadInput(err) {
			status = http.StatusBadRequest
		} else {
			h.log.ErrorContext(ctx, "queue messages", "queue", queue, "error", err)
		}
		writeError(w, status, err.Error())
		return
	}
	out := messagesJSON{Queue: queue, Cursor: page.Cursor, Messages: make([]messageJSON, len(page.Items))}
	for i, m := range page.Items {
		out.Messages[i] = h.messageJSON(m)
	}
	writeJSON(w, http.StatusOK, out)
}

// messageJSON is one message as a page draws it.
func (h *handler) messageJSON(m mq.MessageInfo) messageJSON {
	mj := messageJSON{
		ID:        m.ID,
		Status:    m.Status.String(),
		Attempts:  m.Attempts,
		BackoffMS: m.Backoff.Milliseconds(),
		AgeMS:     m.Age.Milliseconds(),
		Size:      len(m.Data),
	}
	if m.Policy != nil {
		mj.Policy = m.Policy.String()
	}
	if m.Priority != mq.PriorityNormal {
		mj.Priority = m.Priority.String()
	}
	switch {
	case len(m.Data) == 0:
		mj.Empty = true
	case m.DecodeErr != nil:
		mj.DecodeError = m.DecodeErr.Error()
		mj.Content, mj.Truncated = rawPreview(m.Data, h.opts.MaxContent)
	default:
		mj.Content, mj.Truncated = renderValue(m.Value, h.opts.MaxContent)
	}
	return mj
}

// oneMessageJSON is the answer of GET api/message: one message, with what
// a page's row leaves out.
type oneMessageJSON struct {
	Queue string `json:"queue"`
	messageJSON
	// LockedUntilMS is when the lock of its handling runs out, Unix ms
	// by the Redis server's clock; 0 when not locked.
	LockedUntilMS int64 `json:"locked_until_ms,omitempty"`
	// LockTimeMS is its own lock time, 0 for the worker's.
	LockTimeMS int64             `json:"lock_time_ms"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	// Requeue is the content waiting to replace it, rendered as Content.
	Requeue *string `json:"requeue,omitempty"`
	// DeadLetter tells that the queue keeps a dead letter of the same id.
	DeadLetter bool `json:"dead_letter,omitempty"`
	// AttemptErrors are the errors of its latest failed attempts, oldest
	// first, while it is in the queue (api/dead shows a dead letter's).
	AttemptErrors []attemptErrorJSON `json:"attempt_errors,omitempty"`
	// Result is the result its handler gave with its success
	// (mq.Message.SetResult), while the queue keeps it; absent for none.
	Result *resultJSON `json:"result,omitempty"`
	// Progress is the latest progress its handler reported
	// (mq.Message.Progress), if any.
	Progress *progressJSON `json:"progress,omitempty"`
	// CancelRequestedMS is when a cancel of it, being handled, was asked,
	// Unix ms by the Redis server's clock; 0 for none.
	CancelRequestedMS int64 `json:"cancel_requested_ms,omitempty"`
}

// progressJSON is a handler's latest progress report.
type progressJSON struct {
	N    float64 `json:"n"`
	Note string  `json:"note,omitempty"`
	AtMS int64   `json:"at_ms"`
}

// resultJSON is a message's result (Inspector.Result), its content
// rendered as a message's is.
type resultJSON struct {
	// AtMS is when the success was recorded, Unix ms by the Redis
	// server's clock.
	AtMS        int64  `json:"at_ms"`
	Size        int    `json:"size"`
	Content     string `json:"content"`
	DecodeError string `json:"decode_error,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`
}

// resultOf reads the result of message id, nil for none (or when it
// cannot be read: the message's own view does not fail for it).
func (h *handler) resultOf(ctx context.Context, queue, id string) *resultJSON {
	res, err := h.client.Inspector().Result(ctx, queue, id)
	if err != nil {
		if !errors.Is(err, mq.ErrNoResult) && !errors.Is(err, mq.ErrResultPending) {
			h.log.ErrorContext(ctx, "result", "queue", queue, "id", id, "error", err)
		}
		return nil
	}
	out := &resultJSON{AtMS: res.At.UnixMilli(), Size: len(res.Data)}
	var v any
	if err := res.Decode(&v); err != nil {
		out.DecodeError = err.Error()
		out.Content, out.Truncated = rawPreview(res.Data, h.opts.MaxContent)
	} else {
		out.Content, out.Truncated = renderValue(v, h.opts.MaxContent)
	}
	return out
}

// message answers one message, read in one call (Inspector.Message):
// ?queue=Q&id=ID. A message not in the queue answers 404, and says
// whether a dead letter of the id is kept, and its result, if any, also
// once it left the queue (one call more); a queue that does not exist
// answers 404 with an error that says so (mq.ErrQueueNotFound).
func (h *handler) message(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	queue, id := q.Get("queue"), q.Get("id")
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	m, err := h.client.Inspector().Message(ctx, queue, id)
	if err != nil {
		status := http.StatusBadGateway
		if isBadInput(err) {
			status = http.StatusBadRequest
		} else {
			h.log.ErrorContext(ctx, "message", "queue", queue, "id", id, "error", err)
		}
		writeError(w, status, err.Error())
		return
	}
	out := oneMessageJSON{Queue: queue, messageJSON: h.messageJSON(m), LockTimeMS: m.LockTime.Milliseconds(),
		Metadata: m.Metadata, DeadLetter: m.DeadLetter != nil}
	if !m.LockedUntil.IsZero() {
		out.LockedUntilMS = m.LockedUntil.UnixMilli()
	}
	for _, e := range m.AttemptErrors {
		out.AttemptErrors = append(out.AttemptErrors, attemptErrorJSON{Attempt: e.Attempt, AtMS: e.At.UnixMilli(), Error: e.Error})
	}
	if p := m.Progress; p != nil {
		out.Progress = &progressJSON{N: p.N, Note: p.Note, AtMS: p.At.UnixMilli()}
	}
	if !m.CancelRequested.IsZero() {
		out.CancelRequestedMS = m.CancelRequested.UnixMilli()
	}
	if p := m.Requeue; p != nil {
		var text string
		if p.DecodeErr != nil {
			text, _ = rawPreview(p.Data, h.opts.MaxContent)
		} else {
			text, _ = renderValue(p.Value, h.opts.MaxContent)
		}
		out.Requeue = &text
	}
	out.Result = h.resultOf(ctx, queue, id)
	if m.Status == mq.StatusNone {
		if m.DeadLetter == nil {
			// Not in the queue: is there such a queue at all?
			if err := h.queueMustExist(ctx, queue); err != nil {
				status := http.StatusNotFound
				if !errors.Is(err, mq.ErrQueueNotFound) {
					status = http.StatusBadGateway
					h.log.ErrorContext(ctx, "queue exists", "queue", queue, "error", err)
				}
				writeError(w, status, err.Error())
				return
			}
		}
		writeJSON(w, http.StatusNotFound, out)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

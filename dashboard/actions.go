package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/gocarmine/mq"
)

// ActionHeader is the request header every action must carry, with the
// value "1". The page's script sets it. A page of another origin cannot
// send it without the browser first asking this handler's permission
// (CORS), which it never gives, so its presence proves the request came
// from the dashboard's own page or from a program, never from a form or
// script of another site.
const ActionHeader = "X-MQ-Dashboard"

// actionBody is what every action posts, as JSON.
type actionBody struct {
	Queue string `json:"queue"`
	ID    string `json:"id,omitempty"`
	// All asks a dead-letter action for every dead letter of the queue.
	All bool `json:"all,omitempty"`
	// Create asks a pause to pause a queue that does not exist yet;
	// without it, a pause or resume of such a queue is refused with 404,
	// so that a mistyped name creates nothing.
	Create bool `json:"create,omitempty"`
}

// actionResult is what every action answers.
type actionResult struct {
	// Changed tells whether the action changed anything (the queue was
	// running, the message was there).
	Changed bool `json:"changed"`
	// Count is how many items the action applied to, where that is more
	// than one.
	Count int64 `json:"count,omitempty"`
	// Kept is how many dead letters a requeue of all left in place
	// because the queue holds a message of their id.
	Kept int64 `json:"kept,omitempty"`
}

// action wraps an action's body: refused unless actions are allowed, the
// CSRF guard passes and the body is a valid JSON action.
func (h *handler) action(do func(ctx context.Context, b actionBody) (actionResult, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.opts.AllowActions {
			writeError(w, http.StatusForbidden, "read-only dashboard: actions are off (dashboard.Options.AllowActions)")
			return
		}
		if err := sameOrigin(r); err != nil {
			writeError(w, http.StatusForbidden, "refused: "+err.Error())
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "an action's body is JSON")
			return
		}
		var b actionBody
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			writeError(w, http.StatusBadRequest, "bad action body: "+err.Error())
			return
		}
		if err := mq.ValidateQueueName(b.Queue); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		res, err := do(ctx, b)
		switch {
		case errors.Is(err, errBadAction), errors.Is(err, mq.ErrInvalidMessageID), errors.Is(err, mq.ErrInvalidOption):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, mq.ErrQueueNotFound), errors.Is(err, errNotFound):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, mq.ErrAlreadyQueued):
			// A dead letter whose id the queue holds again: nothing done.
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			h.log.ErrorContext(ctx, "action failed", "path", r.URL.Path, "queue", b.Queue, "id", b.ID, "all", b.All, "error", err)
			writeError(w, http.StatusBadGateway, err.Error())
		default:
			h.log.InfoContext(ctx, "action", "path", r.URL.Path, "queue", b.Queue, "id", b.ID, "all", b.All, "changed", res.Changed, "count", res.Count)
			writeJSON(w, http.StatusOK, res)
		}
	})
}

// errNotFound is an action's answer about a message the queue does not
// hold: 404.
var errNotFound = errors.New("not found")

// sameOrigin is the CSRF guard: the request carries ActionHeader, and
// what the browser says of its origin (Sec-Fetch-Site, Origin) is this
// host.
func sameOrigin(r *http.Request) error {
	if r.Header.Get(ActionHeader) != "1" {
		return fmt.Errorf("an action needs the header %s: 1", ActionHeader)
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s)", site)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("request from another origin (%s)", o)
		}
	}
	return nil
}

func (h *handler) pause(ctx context.Context, b actionBody) (actionResult, error) {
	if !b.Create {
		if err := h.queueMustExist(ctx, b.Queue); err != nil {
			return actionResult{}, err
		}
	}
	changed, err := h.client.Inspector().PauseQueue(ctx, b.Queue)
	if err == nil && b.Create {
		h.refreshNames() // a queue it made is listed at the next overview
	}
	return actionResult{Changed: changed}, err
}

func (h *handler) resume(ctx context.Context, b actionBody) (actionResult, error) {
	if b.Create {
		return actionResult{}, fmt.Errorf("%w: create is for a pause", errBadAction)
	}
	if err := h.queueMustExist(ctx, b.Queue); err != nil {
		return actionResult{}, err
	}
	changed, err := h.client.Inspector().ResumeQueue(ctx, b.Queue)
	return actionResult{Changed: changed}, err
}

// queueMustExist answers mq.ErrQueueNotFound for a queue that does not
// exist (Inspector.QueueExists).
func (h *handler) queueMustExist(ctx context.Context, queue string) error {
	ok, err := h.client.Inspector().QueueExists(ctx, queue)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %q", mq.ErrQueueNotFound, queue)
	}
	return err
}

// cancelMessage cancels one message (mq.Client.Cancel): a queued one is
// deleted, a running one's handler told to stop. Changed is false for a
// message done already; one not in the queue answers 404.
func (h *handler) cancelMessage(ctx context.Context, b actionBody) (actionResult, error) {
	r, err := h.client.Cancel(ctx, b.Queue, b.ID)
	if err != nil {
		return actionResult{}, err
	}
	if r == mq.CancelNotFound {
		if err := h.queueMustExist(ctx, b.Queue); err != nil {
			return actionResult{}, err
		}
		return actionResult{}, fmt.Errorf("%w: message %q is not in queue %q", errNotFound, b.ID, b.Queue)
	}
	return actionResult{Changed: r != mq.CancelDone}, nil
}

func (h *handler) deleteMessage(ctx context.Context, b actionBody) (actionResult, error) {
	changed, err := h.client.Inspector().DeleteMessage(ctx, b.Queue, b.ID)
	if err == nil && !changed {
		// Not in the queue: a queue that does not exist answers 404.
		err = h.queueMustExist(ctx, b.Queue)
	}
	return actionResult{Changed: changed}, err
}

package dashboard

import (
	"context"
	"errors"
	"net/http"
)

// Dead letters: MARKED PLACE. The core is adding dead letters (messages
// that failed for good, kept in the queue's "dead" hash with their last
// error) and Client functions to list, requeue and delete them. When they
// land:
//
//   - set deadLettersAvailable true;
//   - fill counts.Dead in queueCounts (the overview and the chart show it
//     once it is not nil);
//   - deadLetters below: one page of them, from the client's paged listing,
//     as deadJSON;
//   - requeueDead and deleteDead: one (actionBody.ID) or all
//     (actionBody.All) through the client.
//
// The routes (GET api/dead, POST api/dead/requeue, POST api/dead/delete),
// the read-only and CSRF guards, and the page's panel with its buttons
// (assets/app.js, renderDead) are in place already; until then the routes
// answer 501 and the page hides the panel.
const deadLettersAvailable = false

// errNotAvailable answers an action of a part the core does not have yet.
var errNotAvailable = errors.New("not available in this version of the library")

// deadJSON is one dead letter, as the page draws it.
type deadJSON struct {
	ID          string `json:"id"`
	Error       string `json:"error"`
	Attempts    int64  `json:"attempts"`
	DiedMS      int64  `json:"died_ms"`
	Size        int    `json:"size"`
	Content     string `json:"content"`
	DecodeError string `json:"decode_error,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`
}

// deadPageJSON is the answer of GET api/dead?queue=Q&cursor=C.
type deadPageJSON struct {
	Queue   string     `json:"queue"`
	Letters []deadJSON `json:"letters"`
	Cursor  string     `json:"cursor"`
}

// deadLetters answers one page of the queue's dead letters.
func (h *handler) deadLetters(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "dead letters: "+errNotAvailable.Error())
}

// requeueDead moves one dead letter, or all of the queue's, back into the
// queue.
func (h *handler) requeueDead(ctx context.Context, b actionBody) (actionResult, error) {
	return actionResult{}, errNotAvailable
}

// deleteDead deletes one dead letter, or all of the queue's.
func (h *handler) deleteDead(ctx context.Context, b actionBody) (actionResult, error) {
	return actionResult{}, errNotAvailable
}

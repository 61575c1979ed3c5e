package dashboard

import (
	"net/http"
	"testing"
)

// TestHistoryAPI: api/history answers the queue's minutes from Redis, the
// handlings a real worker recorded among them; the dead letters' JSON
// carries the errors of their attempts.
func TestHistoryAPI(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	bury(t, c, "q", map[string]any{"a": 1, "b": 2, "c": 3})
	srv := serve(t, c, Options{Queues: []string{"q"}})

	code, body := get(t, srv, "/mq/api/history?queue=q")
	if code != http.StatusOK {
		t.Fatalf("history: %d %s", code, body)
	}
	h := decodeJSON[outcomesJSON](t, body)
	if h.Queue != "q" || len(h.Minutes) != 60 {
		t.Fatalf("history: queue %q, %d minutes", h.Queue, len(h.Minutes))
	}
	var sum outcomeMinuteJSON
	for i, m := range h.Minutes {
		if i > 0 && m.StartMS != h.Minutes[i-1].StartMS+60000 {
			t.Fatalf("minute %d starts at %d, after %d", i, m.StartMS, h.Minutes[i-1].StartMS)
		}
		sum.Processed += m.Processed
		sum.Failed += m.Failed
		sum.Dead += m.Dead
	}
	if sum != (outcomeMinuteJSON{Processed: 3, Failed: 3, Dead: 3}) {
		t.Errorf("sums %+v", sum)
	}
	code, body = get(t, srv, "/mq/api/history?queue=q&minutes=1440")
	if h := decodeJSON[outcomesJSON](t, body); code != http.StatusOK || len(h.Minutes) != 1440 {
		t.Errorf("a day: %d, %d minutes", code, len(h.Minutes))
	}
	for _, bad := range []string{"queue=a*", "queue=q&minutes=0", "queue=q&minutes=1441", "queue=q&minutes=x", ""} {
		if code, body := get(t, srv, "/mq/api/history?"+bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}

	p := deadPage(t, srv, "queue=q")
	for _, d := range p.Letters {
		if len(d.AttemptErrors) != 1 || d.AttemptErrors[0].Attempt != 1 || d.AttemptErrors[0].Error != d.Error ||
			d.AttemptErrors[0].AtMS != d.DiedMS {
			t.Errorf("attempt errors of %s: %+v", d.ID, d.AttemptErrors)
		}
	}
}

package fault

import (
	"context"
	"fmt"
	"testing"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// TestScenarioDroppedDrawnIDs: enqueues of ids the client draws (no
// MessageID), one call at a time, through a proxy that drops 5% of the
// replies to script calls after Redis applied them. A call of one such
// message has the id as its token (docs/protocol.md §8), so go-redis
// sending it again must find its receipt under the id: every enqueue
// answers added (a resend that missed its receipt would find its message
// queued and answer already-queued), and the queue holds each message
// once, on the full calls below the wake backlog and the short ones past
// it (§3).
func TestScenarioDroppedDrawnIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.proxied(5)
	c := h.producer(redis.Options{Addr: p.Addr})
	ctx := context.Background()
	// The scripts in Redis's cache first, so that drops hit calls that
	// ran: a first full call, and a short one past the backlog.
	if _, err := c.Enqueue(ctx, queue, "warm-up", nil); err != nil {
		t.Fatal(err)
	}
	n := scale(3000, 20_000)
	p.Set(Rule{Action: Drop, Probability: 0.05, Commands: []string{"evalsha", "eval"}})
	acked, failed := 0, 0
	for i := range n {
		res, err := c.Enqueue(ctx, queue, fmt.Sprint("m", i), nil)
		if err != nil { // go-redis gave up: applied or not, unknown
			failed++
			continue
		}
		if !res.OK() {
			t.Fatalf("enqueue %d (%s) answered %v: a resend missed its receipt", i, res.MessageID, res.Refused)
		}
		acked++
	}
	p.Set(Rule{})
	st := p.Stats()
	t.Logf("proxy: %+v; %d enqueues acknowledged, %d failed", st, acked, failed)
	if st.Dropped == 0 {
		t.Fatal("no reply dropped")
	}
	stored := h.rdb.HLen(ctx, keys.All(queue, false)[keys.Messages]).Val() - 1
	ready := h.rdb.LLen(ctx, keys.All(queue, false)[keys.MidsReady]).Val() - 1
	if stored < int64(acked) || stored > int64(acked+failed) || ready != stored {
		t.Errorf("%d messages stored and %d ready for %d acknowledged and %d failed enqueues", stored, ready, acked, failed)
	}
}

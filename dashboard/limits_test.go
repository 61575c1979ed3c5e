package dashboard

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestOverviewLimits: a queue's limits and their use are in its overview
// entry, and absent for a queue without limits.
func TestOverviewLimits(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx := context.Background()
	for _, q := range []string{"limited", "free"} {
		if _, err := c.Enqueue(ctx, q, "x", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Inspector().SetLimits(ctx, "limited", mq.Limits{Rate: mq.Rate{N: 100, Per: time.Second, Burst: 5}, KeyConcurrency: 3}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, c, Options{Queues: []string{"limited", "free"}})
	_, body := get(t, srv, "/mq/api/overview")
	ov := decodeJSON[overviewJSON](t, body)
	byName := map[string]queueJSON{}
	for _, q := range ov.Queues {
		byName[q.Name] = q
	}
	l := byName["limited"].Limits
	if l == nil || l.Rate != "100/1s+5" || l.KeyRate != "none" || l.KeyConcurrency != 3 || l.Concurrency != 0 {
		t.Errorf("limited: limits %+v", l)
	}
	if byName["free"].Limits != nil {
		t.Errorf("free: limits %+v, want none", byName["free"].Limits)
	}
}

package mqprom

import (
	"context"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueCollectorLimits: a queue with limits exports its slots held
// and its parked messages; a queue without exports neither.
func TestQueueCollectorLimits(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	ctx := context.Background()
	enqueue(t, c, "limited", "m", nil)
	enqueue(t, c, "free", "m", nil)
	require.NoError(t, c.Inspector().SetLimits(ctx, "limited", mq.Limits{Concurrency: 4}))
	col := NewQueueCollector(c, &QueueOptions{Queues: []string{"limited", "free"}})
	got := only(gather(t, col), "mq_queue_limit_")
	assert.Equal(t, map[string]float64{
		`mq_queue_limit_slots_held{queue="limited"}`: 0,
		`mq_queue_limit_parked{queue="limited"}`:     0,
	}, got)
}

package mqprom

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQueueCollectorResults: the results a queue keeps, as a gauge.
func TestQueueCollectorResults(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newClient(t, srv.Client(t), false)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const q = "rpc"
	for i := range 3 {
		enqueue(t, c, q, fmt.Sprint("ask-", i), nil)
	}
	w, err := c.StartWorker(ctx, q, &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error { return m.SetResult(m.ID) }),
	})
	require.NoError(t, err)
	defer w.Stop(ctx)
	for i := range 3 {
		_, err := c.WaitResult(ctx, q, fmt.Sprint("ask-", i))
		require.NoError(t, err)
	}
	got := gather(t, NewQueueCollector(c, nil))
	assert.Equal(t, 3.0, got[`mq_queue_results{queue="rpc"}`])
}

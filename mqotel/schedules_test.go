package mqotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/internal/redistest"
	"github.com/gocarmine/mq/mqotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTicksCounter: a worker whose Observer is a MetricsObserver counts
// the ticks its scheduler enqueues, by queue and schedule.
func TestTicksCounter(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	mp, reader := newMetrics(t)
	obs, err := mqotel.NewMetricsObserver(mqotel.WithMeterProvider(mp))
	require.NoError(t, err)
	c := newClient(t, srv)
	const q = "jobs"
	_, err = c.Inspector().SetSchedule(context.Background(), q, mq.Schedule{Name: "s", Every: time.Second, Message: "x"})
	require.NoError(t, err)
	handled := make(chan struct{}, 10)
	w := startWorker(t, context.Background(), c, q, mq.WorkerConfig{Observer: obs,
		Handler: mq.HandlerFunc(func(context.Context, *mq.Message) error {
			handled <- struct{}{}
			return nil
		})})
	<-handled
	require.NoError(t, w.Stop(context.Background()))
	key := mqotel.TicksName + " messaging.carmine_mq.schedule=s messaging.carmine_mq.schedule.skipped=false messaging.destination.name=" + q
	got, err := collect(t, reader)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, got[key], 1.0, "the tick handled was counted: %v", got)
	for k := range got {
		assert.NotContains(t, k, "skipped=true", "no tick skipped")
	}
}

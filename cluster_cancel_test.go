package mq

import (
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterCancel: on a Redis Cluster, cancel.lua publishes from the
// queue's slot and the client's one subscription (on whichever node) hears
// it: the handling ends at once (a lock time of a minute leaves no renewal
// to do it). Not parallel: TestCluster clears the shared cluster.
func TestClusterCancel(t *testing.T) {
	rc := redistest.SharedCluster(t)
	c := newClusterClient(t, rc.Client(t))
	ctx := clusterCtx(t, time.Minute)
	q := "cancel-" + t.Name()
	h := newBlockingHandler()
	_, ev := startSubscribed(t, c, q, &WorkerConfig{Handler: h, LockTime: time.Minute})
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	waitStarted(t, h.started, "x")
	r, err := c.Cancel(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, CancelSignalled, r)
	assert.Equal(t, OutcomeCancelled, waitHandled(t, ev, "x", 1))
	assert.ErrorIs(t, h.cause("x"), ErrCancelled)
}

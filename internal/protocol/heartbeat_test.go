package protocol

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeartbeat: docs/protocol.md §12. A beat stores the worker's entry
// until the server's now plus its ttl; a listing answers the live entries
// only, and removes expired ones from both keys; a worker gone is removed
// at once.
func TestHeartbeat(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		list := func() []WorkerEntry {
			t.Helper()
			_, es, err := LiveWorkers(ctx, s.RDB, s.Keys(q))
			require.NoError(t, err)
			return es
		}
		inInfo := func(id string) bool {
			t.Helper()
			ok, err := s.RDB.HExists(ctx, s.Key(q, keys.WorkerInfo), id).Result()
			require.NoError(t, err)
			return ok
		}
		inWorkers := func(id string) bool {
			t.Helper()
			err := s.RDB.ZScore(ctx, s.Key(q, keys.Workers), id).Err()
			if err == redis.Nil {
				return false
			}
			require.NoError(t, err)
			return true
		}

		assert.Empty(t, list())
		nowA, err := Heartbeat(ctx, s.RDB, s.Keys(q), "a", time.Minute, []byte(`{"n":1}`))
		require.NoError(t, err)
		near(t, s.Now(t), nowA, "a beat answers the server's time")
		var others []string
		for i, k := range s.Keys(q) {
			if keys.Index(i) != keys.Workers && keys.Index(i) != keys.WorkerInfo {
				others = append(others, k)
			}
		}
		n, err := s.RDB.Exists(ctx, others...).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "a beat writes no key of Carmine's, nor any other")
		nowB, err := Heartbeat(ctx, s.RDB, s.Keys(q), "b", time.Millisecond, []byte(`{"n":2}`))
		require.NoError(t, err)
		queuetest.WaitFor(t, "b's heartbeat to run out", func() bool { return s.Now(t) > nowB+1 })
		assert.True(t, inWorkers("b") && inInfo("b"), "an expired entry stays until a call prunes it")

		now, es, err := LiveWorkers(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, now, nowB+1)
		assert.Equal(t, []WorkerEntry{{ID: "a", Expires: nowA + 60000, Info: []byte(`{"n":1}`)}}, es)
		assert.False(t, inWorkers("b") || inInfo("b"), "pruned from both keys")

		// A later beat moves the expiry and replaces the info.
		nowA2, err := Heartbeat(ctx, s.RDB, s.Keys(q), "a", 2*time.Minute, []byte(`{"n":3}`))
		require.NoError(t, err)
		assert.Equal(t, []WorkerEntry{{ID: "a", Expires: nowA2 + 120000, Info: []byte(`{"n":3}`)}}, list())

		gone, err := WorkerGone(ctx, s.RDB, s.Keys(q), "a")
		require.NoError(t, err)
		assert.True(t, gone)
		gone, err = WorkerGone(ctx, s.RDB, s.Keys(q), "a")
		require.NoError(t, err)
		assert.False(t, gone, "gone already")
		assert.Empty(t, list())
		n, err = s.RDB.Exists(ctx, s.Key(q, keys.Workers), s.Key(q, keys.WorkerInfo)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "no key left behind")

		_, err = Heartbeat(ctx, s.RDB, s.Keys(q), "c", 0, []byte(`{}`))
		assert.ErrorContains(t, err, "ttl")
	})
}

// TestHeartbeatPruneBounded: one call removes at most HeartbeatPrune
// expired entries, so that a queue left with many dead workers costs each
// call a bounded amount of work; the next calls remove the rest.
func TestHeartbeatPruneBounded(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		dead := HeartbeatPrune + HeartbeatPrune/2
		old := s.Now(t) - 1000
		_, err := s.RDB.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range dead {
				id := fmt.Sprintf("dead-%03d", i)
				p.ZAdd(ctx, s.Key(q, keys.Workers), redis.Z{Score: float64(old), Member: id})
				p.HSet(ctx, s.Key(q, keys.WorkerInfo), id, "{}")
			}
			return nil
		})
		require.NoError(t, err)
		left := func() (int64, int64) {
			t.Helper()
			z, err := s.RDB.ZCard(ctx, s.Key(q, keys.Workers)).Result()
			require.NoError(t, err)
			h, err := s.RDB.HLen(ctx, s.Key(q, keys.WorkerInfo)).Result()
			require.NoError(t, err)
			return z, h
		}

		_, err = Heartbeat(ctx, s.RDB, s.Keys(q), "live", time.Minute, []byte("{}"))
		require.NoError(t, err)
		z, h := left()
		assert.Equal(t, int64(dead-HeartbeatPrune+1), z, "one bounded prune, then the beat")
		assert.Equal(t, z, h)

		_, es, err := LiveWorkers(ctx, s.RDB, s.Keys(q))
		require.NoError(t, err)
		require.Len(t, es, 1)
		assert.Equal(t, "live", es[0].ID)
		z, h = left()
		assert.Equal(t, int64(1), z, "the rest pruned by the listing")
		assert.Equal(t, int64(1), h)
	})
}

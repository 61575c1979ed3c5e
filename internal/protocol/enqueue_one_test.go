package protocol

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withReceipts is a dump with the enqueue receipts of queue q, whose
// generation start reads "T".
func withReceipts(t *testing.T, s *server, q string, d map[string]string) map[string]string {
	t.Helper()
	for _, i := range []keys.Index{keys.EnqueueReceipts, keys.EnqueueReceiptsPrev} {
		h, err := s.rdb.HGetAll(context.Background(), s.key(q, i)).Result()
		require.NoError(t, err)
		if _, ok := h["@since"]; ok {
			h["@since"] = "T"
		}
		d[keys.Suffixes[i]] = fmt.Sprint(h)
	}
	return d
}

// TestEnqueueOneWritesAsEnqueue: for every message enqueue-one.lua takes
// (one, not delayed, new to the queue, on its call's first send), it
// writes exactly what enqueue.lua writes, receipt and sleep sentinel
// included, over a few enqueues in a row (so that the sentinel moves each
// way and mid-circle gets its sentinel once); and it reads the sampled
// generation of the receipts as enqueue.lua does.
func TestEnqueueOneWritesAsEnqueue(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		type variant struct {
			name      string
			indexOnly bool
			meta      []byte
			lock      time.Duration
		}
		for _, v := range []variant{
			{name: "plain"},
			{name: "index-only", indexOnly: true},
			{name: "metadata", meta: []byte("m1")},
			{name: "metadata, index-only", meta: []byte("m1"), indexOnly: true},
			{name: "lock time", lock: 1500 * time.Millisecond},
			{name: "lock time, index-only", lock: time.Second, indexOnly: true},
			{name: "both", meta: []byte("m2"), lock: time.Second},
		} {
			lean, full := queueName(t)+":"+v.name+":lean", queueName(t)+":"+v.name+":full"
			for _, q := range []string{lean, full} {
				// Metadata a Carmine worker's collection left behind.
				require.NoError(t, s.rdb.HSet(ctx, s.key(q, keys.Meta), "id-1", "stale").Err())
			}
			// Tokens ending in 0 are sampled: they read the generation.
			for i, token := range []string{"ab1", "ab0", "ac3", "ad0"} {
				call := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Hour, IndexOnly: v.indexOnly,
					Messages: []EnqueueMessage{{ID: fmt.Sprintf("id-%d", i), Data: []byte("x"), LockTime: v.lock, Metadata: v.meta}}}
				require.True(t, call.lean(), v.name)
				a := Enqueue(ctx, s.rdb, s.keys(lean), call)
				require.NoError(t, a.Err, v.name)
				require.Equal(t, []Code{Added}, a.Codes, v.name)

				call.Sends = new(Sends) // the same call, on enqueue.lua's own first send
				reply, err := enqueueScript.Run(ctx, s.rdb, s.keys(full), call.argv()...).StringSlice()
				require.NoError(t, err, v.name)
				require.Equal(t, []string{"added"}, reply, v.name)
			}
			now := s.now(t)
			assert.Equal(t, withReceipts(t, s, full, dumpQueue(t, s, full, now)), withReceipts(t, s, lean, dumpQueue(t, s, lean, now)), v.name)
		}
	})
}

// TestEnqueueOneLeavesTheRest: what enqueue-one.lua does not take goes to
// enqueue.lua, with nothing written by the lean script: an id the queue
// holds, a delayed message, a second send of a call; and a call of many
// messages never goes to it.
func TestEnqueueOneLeavesTheRest(t *testing.T) {
	onEachServer(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		q := queueName(t)
		one := func(m EnqueueMessage) EnqueueCall {
			return EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, Messages: []EnqueueMessage{m}}
		}
		assert.False(t, one(EnqueueMessage{ID: "a", InitialBackoff: time.Millisecond}).lean(), "delayed")
		assert.False(t, one(EnqueueMessage{ID: "a", At: 1}).lean(), "delayed to a time")
		assert.False(t, EnqueueCall{Token: "t", Keep: time.Minute, Messages: []EnqueueMessage{{ID: "a"}}}.lean(), "no Sends: every send looks")
		assert.False(t, EnqueueCall{Token: "t", Sends: new(Sends), Keep: time.Minute,
			Messages: []EnqueueMessage{{ID: "a"}, {ID: "b"}}}.lean(), "two messages")

		// An id the queue holds: enqueue-one.lua answers nil, writing
		// nothing; enqueue.lua refuses it, or updates it when allowed.
		mustEnqueue(t, s, q, "first", &EnqueueMessage{ID: "a"})
		now := s.now(t)
		before := withReceipts(t, s, q, dumpQueue(t, s, q, now))
		args := leanArgv(one(EnqueueMessage{ID: "a", Data: []byte("second")}))
		err := enqueueOneScript.Run(ctx, s.rdb, leanKeys(s.keys(q), one(EnqueueMessage{ID: "a"})), args...).Err()
		require.ErrorIs(t, err, redis.Nil)
		assert.Equal(t, before, withReceipts(t, s, q, dumpQueue(t, s, q, now)), "the lean script wrote nothing")
		code, err := enqueue(ctx, s, q, "second", &EnqueueMessage{ID: "a"})
		require.NoError(t, err)
		assert.Equal(t, AlreadyQueued, code)
		code, err = enqueue(ctx, s, q, "second", &EnqueueMessage{ID: "a", CanUpdate: true})
		require.NoError(t, err)
		assert.Equal(t, Updated, code)
		assert.Equal(t, "second", s.rdb.HGet(ctx, s.key(q, keys.Messages), "a").Val())

		// A second send of a call, after the first was applied and its
		// reply lost: enqueue-one.lua leaves it to enqueue.lua, which
		// answers the receipt, though the message is gone since.
		call := one(EnqueueMessage{ID: "b", Data: []byte("x")})
		a := Enqueue(ctx, s.rdb, s.keys(q), call)
		require.NoError(t, a.Err)
		require.Equal(t, []Code{Added}, a.Codes)
		require.NoError(t, s.rdb.HDel(ctx, s.key(q, keys.Messages), "b").Err())
		args = leanArgv(call)
		require.ErrorIs(t, enqueueOneScript.Run(ctx, s.rdb, leanKeys(s.keys(q), call), args...).Err(), redis.Nil,
			"a later send of the lean call")
		a = Enqueue(ctx, s.rdb, s.keys(q), call)
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Added}, a.Codes, "answered from the receipt")
		assert.Equal(t, StatusNone, statusOf(t, s, q, "b"), "not added anew")
	})
}

// TestEnqueueOneArgsInStep: the optional keys and arguments of
// enqueue-one.lua come together, as its header says.
func TestEnqueueOneArgsInStep(t *testing.T) {
	all := keys.All("q", false)
	for _, m := range []EnqueueMessage{{}, {Metadata: []byte("m")}, {LockTime: time.Second}, {Metadata: []byte("m"), LockTime: time.Second}} {
		for _, indexOnly := range []bool{false, true} {
			c := EnqueueCall{Token: "t", Sends: new(Sends), IndexOnly: indexOnly, Messages: []EnqueueMessage{m}}
			ks, args := leanKeys(all, c), leanArgv(c)
			meta := len(m.Metadata) > 0 || !indexOnly
			want := []string{all[keys.Messages], all[keys.UDTs], all[keys.MidsReady], all[keys.MidCircle],
				all[keys.ISleepA], all[keys.ISleepB], all[keys.EnqueueReceipts], all[keys.EnqueueReceiptsPrev]}
			if m.LockTime > 0 {
				want = append(want, all[keys.LockTimes])
			}
			if meta {
				want = append(want, all[keys.Meta])
			}
			assert.Equal(t, want, ks, "%+v index-only %v", m, indexOnly)
			switch {
			case meta:
				assert.Equal(t, []any{MS(m.LockTime), m.Metadata}, args[4:], "%+v index-only %v", m, indexOnly)
			case m.LockTime > 0:
				assert.Equal(t, []any{MS(m.LockTime)}, args[4:], "%+v index-only %v", m, indexOnly)
			default:
				assert.Len(t, args, 4)
			}
		}
	}
}

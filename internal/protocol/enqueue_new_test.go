package protocol

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withReceipts is a dump with the enqueue receipts of queue q, whose
// generation start reads "T".
func withReceipts(t *testing.T, s *queuetest.Server, q string, d map[string]string) map[string]string {
	t.Helper()
	for _, i := range []keys.Index{keys.EnqueueReceipts, keys.EnqueueReceiptsPrev} {
		h, err := s.RDB.HGetAll(context.Background(), s.Key(q, i)).Result()
		require.NoError(t, err)
		if _, ok := h["@since"]; ok {
			h["@since"] = "T"
		}
		d[keys.Suffixes[i]] = fmt.Sprint(h)
	}
	return d
}

// TestEnqueueNewWritesAsEnqueue: for every call enqueue-new.lua takes
// (messages not delayed, new to the queue, on the call's first send), it
// writes exactly what enqueue.lua writes, receipt and sleep sentinel
// included, over a few calls in a row (so that the sentinel moves each way
// and mid-circle gets its sentinel once), with one message a call or
// three; and it reads the sampled generation of the receipts as
// enqueue.lua does.
func TestEnqueueNewWritesAsEnqueue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
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
			for _, size := range []int{1, 3} {
				name := fmt.Sprintf("%s, %d a call", v.name, size)
				lean, full := queuetest.QueueName(t)+":"+name+":lean", queuetest.QueueName(t)+":"+name+":full"
				for _, q := range []string{lean, full} {
					// Metadata a Carmine worker's collection left behind.
					require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Meta), "id-1", "stale", "id-4", "stale").Err())
				}
				// Tokens ending in 0 are sampled: they read the generation.
				for i, token := range []string{"ab1", "ab0", "ac3", "ad0"} {
					call := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Hour, IndexOnly: v.indexOnly}
					for k := range size {
						m := EnqueueMessage{ID: fmt.Sprintf("id-%d", i*size+k), Data: []byte(fmt.Sprint("x", k))}
						if k != 1 { // in calls of three, the second has neither
							m.LockTime, m.Metadata = v.lock, v.meta
						}
						call.Messages = append(call.Messages, m)
					}
					require.True(t, call.lean(), name)
					a := Enqueue(ctx, s.RDB, s.Keys(lean), call)
					require.NoError(t, a.Err, name)
					require.Equal(t, slices.Repeat([]Code{Added}, size), a.Codes, name)

					call.Sends = new(Sends) // the same call, on enqueue.lua's own first send
					reply, err := enqueueScript.Run(ctx, s.RDB, s.Keys(full), call.argv()...).StringSlice()
					require.NoError(t, err, name)
					require.Equal(t, slices.Repeat([]string{"added"}, size), reply, name)
				}
				now := s.Now(t)
				assert.Equal(t, withReceipts(t, s, full, dumpQueue(t, s, full, now)), withReceipts(t, s, lean, dumpQueue(t, s, lean, now)), name)
			}
		}
	})
}

// TestEnqueueNewLeavesTheRest: what enqueue-new.lua does not take goes to
// enqueue.lua, with nothing written by the lean script: an id the queue
// holds, alone or among new ones, an id twice in one call, a delayed
// message, a second send of a call; and a call whose options expect a
// held id is not tried on the lean script at all.
func TestEnqueueNewLeavesTheRest(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		call := func(ms ...EnqueueMessage) EnqueueCall {
			return EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, Messages: ms}
		}
		assert.False(t, call(EnqueueMessage{ID: "a", InitialBackoff: time.Millisecond}).lean(), "delayed")
		assert.False(t, call(EnqueueMessage{ID: "a"}, EnqueueMessage{ID: "b", At: 1}).lean(), "one delayed to a time")
		assert.False(t, EnqueueCall{Token: "t", Keep: time.Minute, Messages: []EnqueueMessage{{ID: "a"}}}.lean(), "no Sends: every send looks")
		assert.False(t, call().lean(), "no message")
		for _, m := range []EnqueueMessage{{ID: "a", CanUpdate: true}, {ID: "a", CanRequeue: true}, {ID: "a", ResetInitialBackoff: true}} {
			assert.False(t, call(EnqueueMessage{ID: "n"}, m).lean(), "options for a held id: %+v", m)
		}

		// Ids the queue holds, or twice in a call: enqueue-new.lua answers
		// nil, writing nothing; enqueue.lua decides each message.
		mustEnqueue(t, s, q, "first", &EnqueueMessage{ID: "a"})
		for _, c := range []EnqueueCall{
			call(EnqueueMessage{ID: "a", Data: []byte("second")}),
			call(EnqueueMessage{ID: "n1", Data: []byte("n")}, EnqueueMessage{ID: "a", Data: []byte("second")}),
			call(EnqueueMessage{ID: "n1", Data: []byte("n")}, EnqueueMessage{ID: "n1", Data: []byte("n")}),
		} {
			now := s.Now(t)
			before := withReceipts(t, s, q, dumpQueue(t, s, q, now))
			err := enqueueNewScript.Run(ctx, s.RDB, leanKeys(s.Keys(q), c), leanArgv(c)...).Err()
			require.ErrorIs(t, err, redis.Nil, "%+v", c.Messages)
			assert.Equal(t, before, withReceipts(t, s, q, dumpQueue(t, s, q, now)), "the lean script wrote nothing: %+v", c.Messages)
		}
		a := Enqueue(ctx, s.RDB, s.Keys(q), call(EnqueueMessage{ID: "n1", Data: []byte("n")}, EnqueueMessage{ID: "a", Data: []byte("second")},
			EnqueueMessage{ID: "n1", Data: []byte("n")}))
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Added, AlreadyQueued, AlreadyQueued}, a.Codes)
		a = Enqueue(ctx, s.RDB, s.Keys(q), call(EnqueueMessage{ID: "a", Data: []byte("second"), CanUpdate: true}))
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Updated}, a.Codes)
		assert.Equal(t, "second", s.RDB.HGet(ctx, s.Key(q, keys.Messages), "a").Val())

		// A second send of a call, after the first was applied and its
		// reply lost: enqueue-new.lua leaves it to enqueue.lua, which
		// answers the receipt, though a message is gone since.
		c := call(EnqueueMessage{ID: "b", Data: []byte("x")}, EnqueueMessage{ID: "c", Data: []byte("x")})
		a = Enqueue(ctx, s.RDB, s.Keys(q), c)
		require.NoError(t, a.Err)
		require.Equal(t, []Code{Added, Added}, a.Codes)
		require.NoError(t, s.RDB.HDel(ctx, s.Key(q, keys.Messages), "b").Err())
		require.ErrorIs(t, enqueueNewScript.Run(ctx, s.RDB, leanKeys(s.Keys(q), c), leanArgv(c)...).Err(), redis.Nil,
			"a later send of the lean call")
		a = Enqueue(ctx, s.RDB, s.Keys(q), c)
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Added, Added}, a.Codes, "answered from the receipt")
		assert.Equal(t, StatusNone, statusOf(t, s, q, "b"), "not added anew")
	})
}

// TestEnqueueNewArgsInStep: lock-times and meta, and the per-message
// lock times and metadata, come together, as the script's header says;
// and only a sampled call (its token ends in '0') passes the previous
// receipts' key and the keep time.
func TestEnqueueNewArgsInStep(t *testing.T) {
	all := keys.All("q", false)
	base := []string{all[keys.Messages], all[keys.UDTs], all[keys.MidsReady], all[keys.MidCircle],
		all[keys.ISleepA], all[keys.ISleepB], all[keys.EnqueueReceipts]}
	plain := EnqueueMessage{ID: "p", Data: []byte("d")}
	for _, token := range []string{"t1", "t0"} {
		sampled := token == "t0"
		wantKeys, wantArgs := slices.Clone(base), []any{}
		if sampled {
			wantKeys, wantArgs = append(wantKeys, all[keys.EnqueueReceiptsPrev]), append(wantArgs, int64(60000))
		}
		for _, m := range []EnqueueMessage{{ID: "m", Data: []byte("d")}, {ID: "m", Data: []byte("d"), Metadata: []byte("m")},
			{ID: "m", Data: []byte("d"), LockTime: time.Second}} {
			for _, indexOnly := range []bool{false, true} {
				c := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Minute, IndexOnly: indexOnly, Messages: []EnqueueMessage{plain, m}}
				ks, args := leanKeys(all, c), leanArgv(c)
				assert.Equal(t, firstSendToken{token, c.Sends}, args[0])
				optional := len(m.Metadata) > 0 || m.LockTime > 0 || !indexOnly
				if !optional {
					assert.Equal(t, wantKeys, ks)
					assert.Equal(t, append(slices.Clone(wantArgs), "p", []byte("d"), "m", []byte("d")), args[1:])
					continue
				}
				assert.Equal(t, append(slices.Clone(wantKeys), all[keys.LockTimes], all[keys.Meta]), ks)
				assert.Equal(t, append(slices.Clone(wantArgs), boolArg(!indexOnly), "p", []byte("d"), int64(0), []byte(nil),
					"m", []byte("d"), MS(m.LockTime), m.Metadata), args[1:], "%+v index-only %v", m, indexOnly)
			}
		}
	}
}

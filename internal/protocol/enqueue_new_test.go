package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// enqueue.lua does. Ids the producer gave may have metadata a Carmine
// worker left behind, which both delete; ids the client drew cannot, and
// the lean call is then passed neither lock-times nor meta.
func TestEnqueueNewWritesAsEnqueue(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		type variant struct {
			name      string
			indexOnly bool
			meta      []byte
			lock      time.Duration
			fresh     bool // ids drawn by the client: no stale metadata
		}
		for _, v := range []variant{
			{name: "plain"},
			{name: "plain, drawn ids", fresh: true},
			{name: "metadata, drawn ids", meta: []byte("m1"), fresh: true},
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
					if v.fresh {
						break // an id the client drew for its message has none
					}
					// Metadata a Carmine worker's collection left behind.
					require.NoError(t, s.RDB.HSet(ctx, s.Key(q, keys.Meta), "id-1", "stale", "id-4", "stale").Err())
				}
				// Tokens ending in 0 are sampled: they read the generation.
				for i, token := range []string{"ab1", "ab0", "ac3", "ad0"} {
					call := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Hour, IndexOnly: v.indexOnly}
					for k := range size {
						m := EnqueueMessage{ID: fmt.Sprintf("id-%d", i*size+k), Data: []byte(fmt.Sprint("x", k)), FreshID: v.fresh}
						if k != 1 { // in calls of three, the second has neither
							m.LockTime, m.Metadata = v.lock, v.meta
						}
						call.Messages = append(call.Messages, m)
					}
					addedBoth(t, s, lean, full, call, name)
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
			err := enqueueNewScript.Run(ctx, s.RDB, leanKeys(s.Keys(q), c, false), leanArgv(c)...).Err()
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
		require.ErrorIs(t, enqueueNewScript.Run(ctx, s.RDB, leanKeys(s.Keys(q), c, false), leanArgv(c)...).Err(), redis.Nil,
			"a later send of the lean call")
		a = Enqueue(ctx, s.RDB, s.Keys(q), c)
		require.NoError(t, a.Err)
		assert.Equal(t, []Code{Added, Added}, a.Codes, "answered from the receipt")
		assert.Equal(t, StatusNone, statusOf(t, s, q, "b"), "not added anew")
	})
}

// TestEnqueueNewArgsInStep: lock-times and meta, and the per-message
// lock times and metadata, come together, as the script's header says,
// passed only when a message has a lock time or metadata, or stale
// metadata may be there (no IndexOnly, an id the client did not draw);
// only a sampled call (its token ends in '0') passes the previous
// receipts' key and the keep time; the token comes last before the
// messages, and a call of one message whose id the client drew has that
// id as its token, passed once.
func TestEnqueueNewArgsInStep(t *testing.T) {
	all := keys.All("q", false)
	base := []string{all[keys.Messages], all[keys.UDTs], all[keys.MidsReady], all[keys.EnqueueReceipts],
		all[keys.MidCircle], all[keys.ISleepA], all[keys.ISleepB]}
	for _, token := range []string{"t1", "t0"} {
		sampled := token == "t0"
		wantKeys, wantArgs := slices.Clone(base), []any{}
		if sampled {
			wantKeys, wantArgs = append(wantKeys, all[keys.EnqueueReceiptsPrev]), append(wantArgs, int64(60000))
		}
		for _, m := range []EnqueueMessage{{ID: "m", Data: []byte("d")}, {ID: "m", Data: []byte("d"), Metadata: []byte("m")},
			{ID: "m", Data: []byte("d"), LockTime: time.Second}} {
			for _, v := range []struct{ indexOnly, fresh bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
				indexOnly := v.indexOnly
				plain := EnqueueMessage{ID: "p", Data: []byte("d"), FreshID: v.fresh}
				m.FreshID = v.fresh
				c := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Minute, IndexOnly: indexOnly, Messages: []EnqueueMessage{plain, m}}
				ks, args := leanKeys(all, c, false), writtenArgs(leanArgv(c))
				optional := len(m.Metadata) > 0 || m.LockTime > 0 || !indexOnly && !v.fresh
				if !optional {
					assert.Equal(t, wantKeys, ks)
					assert.Equal(t, append(slices.Clone(wantArgs), firstSendToken{token, c.Sends}, "p", []byte("d"), "m", []byte("d")), args)
					continue
				}
				assert.Equal(t, append(slices.Clone(wantKeys), all[keys.LockTimes], all[keys.Meta]), ks)
				assert.Equal(t, append(slices.Clone(wantArgs), boolArg(!indexOnly), firstSendToken{token, c.Sends}, "p", []byte("d"), int64(0), []byte(nil),
					"m", []byte("d"), MS(m.LockTime), m.Metadata), args, "%+v index-only %v", m, indexOnly)
			}
		}
	}
	// One message whose id the client drew: its id is the token, whatever
	// Token says, sampled by its last digit, and not passed again.
	for _, id := range []string{"i1", "i0"} {
		for _, m := range []EnqueueMessage{{ID: id, Data: []byte("d"), FreshID: true}, {ID: id, Data: []byte("d"), FreshID: true, Metadata: []byte("m")}} {
			c := EnqueueCall{Token: "t1", Sends: new(Sends), Keep: time.Minute, IndexOnly: true, Messages: []EnqueueMessage{m}}
			require.Equal(t, id, c.token())
			wantKeys, wantArgs := slices.Clone(base), []any{}
			if id == "i0" {
				wantKeys, wantArgs = append(wantKeys, all[keys.EnqueueReceiptsPrev]), append(wantArgs, int64(60000))
			}
			if m.Metadata != nil {
				wantKeys = append(wantKeys, all[keys.LockTimes], all[keys.Meta])
				wantArgs = append(wantArgs, "0", firstSendToken{id, c.Sends}, []byte("d"), int64(0), []byte("m"))
			} else {
				wantArgs = append(wantArgs, firstSendToken{id, c.Sends}, []byte("d"))
			}
			assert.Equal(t, wantKeys, leanKeys(all, c, false), "%+v", m)
			assert.Equal(t, wantArgs, writtenArgs(leanArgv(c)), "%+v", m)
			assert.Equal(t, id, c.argv()[0], "enqueue.lua's token, for a later send")
		}
	}
}

// addedBoth sends call, a lean one, to queue lean through Enqueue (so
// enqueue-new.lua) and to queue full through enqueue.lua on its own first
// send, and requires both to answer added for every message.
func addedBoth(t *testing.T, s *queuetest.Server, lean, full string, call EnqueueCall, name string) {
	t.Helper()
	ctx := context.Background()
	require.True(t, call.lean(), name)
	a := Enqueue(ctx, s.RDB, s.Keys(lean), call)
	require.NoError(t, a.Err, name)
	require.Equal(t, slices.Repeat([]Code{Added}, len(call.Messages)), a.Codes, name)
	call.Sends = new(Sends) // the same call, on enqueue.lua's own first send
	reply, err := enqueueScript.Run(ctx, s.RDB, s.Keys(full), call.argv()...).StringSlice()
	require.NoError(t, err, name)
	require.Equal(t, slices.Repeat([]string{"added"}, len(call.Messages)), reply, name)
}

// backlogged gives q a backlog of n ready ids, its circle and the sleep
// sentinel in isleep-a.
func backlogged(t *testing.T, s *queuetest.Server, q string, n int) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
	}
	setList(t, s, q, keys.MidsReady, ids...)
	setList(t, s, q, keys.MidCircle, EndOfCircle)
	setList(t, s, q, keys.ISleepA, "_")
	setList(t, s, q, keys.ISleepB)
}

// TestEnqueueNewShortWritesAsFull: docs/protocol.md §3. Past the wake
// backlog, the short call (no mid-circle, no isleep lists) writes exactly
// what the full lean call writes, receipts included, for calls of one
// message and of three, with and without the optional keys, sampled or
// not; both answer 'deep'.
func TestEnqueueNewShortWritesAsFull(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		// Loaded first: a first-send token goes empty when sent again as
		// EVAL after NOSCRIPT, and the script then steps aside.
		require.NoError(t, enqueueNewScript.Load(ctx, s.RDB).Err())
		require.NoError(t, enqueueNewShortScript.Load(ctx, s.RDB).Err())
		for _, indexOnly := range []bool{true, false} {
			for _, size := range []int{1, 3} {
				for _, token := range []string{"ab1", "ab0", "drawn ids 1", "drawn ids 0"} {
					name := fmt.Sprintf("index-only %v, %d a call, token %s", indexOnly, size, token)
					// Drawn ids, one a call: the id is the token, sampled
					// by its last digit, as the token's would be.
					fresh := strings.HasPrefix(token, "drawn")
					short, full := queuetest.QueueName(t)+":short:"+name, queuetest.QueueName(t)+":full:"+name
					backlogged(t, s, short, WakeBacklog*size)
					backlogged(t, s, full, WakeBacklog*size)
					call := EnqueueCall{Token: token, Sends: new(Sends), Keep: time.Hour, IndexOnly: indexOnly}
					for k := range size {
						m := EnqueueMessage{ID: fmt.Sprint("id-", k, "-", token), Data: []byte(fmt.Sprint("x", k)), FreshID: fresh}
						if k == 1 {
							m.LockTime, m.Metadata = time.Second, []byte("m")
						}
						call.Messages = append(call.Messages, m)
					}
					v, err := enqueueNewShortScript.Run(ctx, s.RDB, leanKeys(s.Keys(short), call, true), leanArgv(call)...).Result()
					require.NoError(t, err, name)
					assert.Equal(t, int64(leanDeep), v, name)
					call.Sends = new(Sends)
					v, err = enqueueNewScript.Run(ctx, s.RDB, leanKeys(s.Keys(full), call, false), leanArgv(call)...).Result()
					require.NoError(t, err, name)
					assert.Equal(t, int64(leanDeep), v, name)
					now := s.Now(t)
					assert.Equal(t, withReceipts(t, s, full, dumpQueue(t, s, full, now)), withReceipts(t, s, short, dumpQueue(t, s, short, now)), name)
				}
			}
		}
	})
}

// TestEnqueueNewShortChangesNothingElse: a short call that finds
// mids-ready below the wake backlog (an empty queue, or one id short of
// it) answers 'keys', and one that finds an id held answers nil; either
// leaves the queue as it was (its push taken back), on the general path
// and on the one-message path (an id the client drew, its token).
func TestEnqueueNewShortChangesNothingElse(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		// Loaded first: a first-send token goes empty when sent again as
		// EVAL after NOSCRIPT, and the script then steps aside.
		require.NoError(t, enqueueNewScript.Load(ctx, s.RDB).Err())
		require.NoError(t, enqueueNewShortScript.Load(ctx, s.RDB).Err())
		for _, size := range []int{1, 3} {
			for _, c := range []struct {
				backlog int
				fresh   bool // ids the client drew: one a call is the token
			}{{0, false}, {WakeBacklog*size - 1, false}, {WakeBacklog * size, false}, {0, true}, {WakeBacklog*size - 1, true}, {WakeBacklog * size, true}} {
				backlog := c.backlog
				q := fmt.Sprintf("%s:%d:%d:%v", queuetest.QueueName(t), size, backlog, c.fresh)
				if backlog > 0 {
					backlogged(t, s, q, backlog)
				}
				held := backlog == WakeBacklog*size
				if held {
					mustEnqueue(t, s, q, "held", &EnqueueMessage{ID: "id-1"})
				}
				call := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true}
				for k := range size {
					call.Messages = append(call.Messages, EnqueueMessage{ID: fmt.Sprint("id-", k+1), Data: []byte("x"), FreshID: c.fresh})
				}
				now := s.Now(t)
				before := withReceipts(t, s, q, dumpQueue(t, s, q, now))
				v, err := enqueueNewShortScript.Run(ctx, s.RDB, leanKeys(s.Keys(q), call, true), leanArgv(call)...).Result()
				if held {
					require.ErrorIs(t, err, redis.Nil, q)
				} else {
					require.NoError(t, err, q)
					assert.Equal(t, int64(leanKeysNeeded), v, q)
				}
				assert.Equal(t, before, withReceipts(t, s, q, dumpQueue(t, s, q, now)), "%s: nothing changed", q)
			}
		}
	})
}

// TestEnqueueBacklogs: a client's lean calls to a queue go short once
// one found the wake backlog, and full again once a short one found the
// list below it, which then adds the message and wakes a sleeper as a
// full call does.
func TestEnqueueBacklogs(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		ks := s.Keys(q)
		b := new(Backlogs)
		require.NoError(t, enqueueNewScript.Load(ctx, s.RDB).Err())
		require.NoError(t, enqueueNewShortScript.Load(ctx, s.RDB).Err())
		call := func(id string) EnqueueAnswer {
			c := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true, Backlogs: b,
				Messages: []EnqueueMessage{{ID: id, Data: []byte("x")}}}
			return Enqueue(ctx, s.RDB, ks, c)
		}
		backlogged(t, s, q, WakeBacklog-1)
		require.Equal(t, []Code{Added}, call("below").Codes)
		assert.False(t, b.has(ks[keys.Messages]), "below the backlog: full")
		assert.Equal(t, "b", sentinel(t, s, q), "woken")
		require.Equal(t, []Code{Added}, call("at").Codes)
		assert.True(t, b.has(ks[keys.Messages]), "at the backlog: short from now on")
		assert.Equal(t, "b", sentinel(t, s, q), "nobody woken")
		require.Equal(t, []Code{Added}, call("short").Codes)
		assert.True(t, b.has(ks[keys.Messages]))
		assert.Equal(t, []Code{AlreadyQueued}, call("short").Codes, "a held id goes on to enqueue.lua")
		assert.True(t, b.has(ks[keys.Messages]))

		// The backlog taken: the short call finds the list empty and the
		// call goes again, full: the message is added and a sleeper woken.
		require.NoError(t, s.RDB.Del(ctx, ks[keys.MidsReady]).Err())
		require.Equal(t, []Code{Added}, call("after").Codes)
		assert.False(t, b.has(ks[keys.Messages]), "full again")
		assert.Equal(t, []string{"after"}, list(t, s, q, keys.MidsReady))
		assert.Equal(t, "a", sentinel(t, s, q), "woken")
		assert.Equal(t, StatusQueued, statusOf(t, s, q, "after"))
	})
}

// leanKeys answers the keys appendLeanKeys passes, as strings: the keys
// of enqueue-new.lua run through Script.Run.
func leanKeys(all []string, c EnqueueCall, short bool) []string {
	var ks []string
	for _, k := range appendLeanKeys(nil, all, c, short) {
		ks = append(ks, k.(*strArg).String())
	}
	return ks
}

// leanArgv answers appendLeanArgv's arguments alone.
func leanArgv(c EnqueueCall) []any { return appendLeanArgv(nil, c) }

// firstSendToken is what a *firstSend argument stands for, to compare:
// its token and its Sends.
type firstSendToken struct {
	token string
	sends *Sends
}

// writtenArgs answers args with each one go-redis writes through a
// pointer (an id's *string, a *bytesArg) replaced by what it writes, and
// each *firstSend by its firstSendToken (not written: writing it marks
// the call sent).
func writtenArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case *firstSend:
			out[i] = firstSendToken{v.token, (*Sends)(v)}
		case *strArg:
			out[i] = v.String()
		case *bytesArg:
			out[i] = []byte(*v)
		default:
			out[i] = a
		}
	}
	return out
}

// TestEnqueueNewCommandText: the lean call's keys, id, content and token,
// passed as pointers to spare allocations, show in the command's text
// (go-redis's Cmd.String, which tracing hooks show) as the strings they
// stand for, and showing them marks no send.
func TestEnqueueNewCommandText(t *testing.T) {
	all := keys.All("q", false)
	for _, m := range []EnqueueMessage{{ID: "given-id", Data: []byte("content")}, {ID: "drawn-id", Data: []byte("content"), FreshID: true}} {
		c := EnqueueCall{Token: "tok1", Sends: new(Sends), Keep: time.Minute, IndexOnly: true, Messages: []EnqueueMessage{m}}
		args := appendLeanKeys([]any{"evalsha", "sha", 7}, all, c, false)
		args = appendLeanArgv(args, c)
		text := redis.NewCmd(context.Background(), args...).String()
		want := "evalsha sha 7 " + strings.Join(leanKeys(all, c, false), " ")
		if m.FreshID {
			want += " drawn-id content"
		} else {
			want += " tok1 given-id content"
		}
		assert.Equal(t, want, text)
		assert.False(t, c.Sends.written.Load(), "shown, not sent")
	}
}

package protocol

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sentinel answers where q's sleep sentinel is: "a", "b" or "" for none.
func sentinel(t *testing.T, s *queuetest.Server, q string) string {
	t.Helper()
	switch {
	case len(list(t, s, q, keys.ISleepA)) > 0:
		return "a"
	case len(list(t, s, q, keys.ISleepB)) > 0:
		return "b"
	}
	return ""
}

// TestOutcomeWakesWhenSooner: docs/protocol.md §6. An outcome that makes
// its message ready (a retry without backoff, a release) or due before
// every other due entry moves the sleep sentinel, which wakes a sleeper;
// a retry due after the earliest entry does not (the sleepers wake then
// anyway).
func TestOutcomeWakesWhenSooner(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		rows := []struct {
			name    string
			outcome Outcome
			backoff time.Duration
			wakes   bool
		}{
			{"retry due before the lock of the other", OutcomeRetry, 10 * time.Millisecond, true},
			{"retry due after it", OutcomeRetry, time.Hour, false},
			{"retry without backoff", OutcomeRetry, 0, true},
			{"release", OutcomeRelease, 0, true},
			{"success", OutcomeSuccess, 0, false},
		}
		for _, row := range rows {
			q := queuetest.QueueName(t) + ":" + row.name
			// Two messages handed out: the other's lock, a minute away, is
			// the earliest due entry once the first one's outcome is in.
			mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "m"})
			mustEnqueue(t, s, q, "y", &EnqueueMessage{ID: "other"})
			r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 2})
			require.NoError(t, err)
			require.Len(t, r.Steps, 2)
			var step Step
			for _, st := range r.Steps {
				if st.ID == "m" {
					step = st
				}
			}
			// A poll that sleeps, as an idle worker's last one.
			r, err = poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
			require.NoError(t, err)
			require.Equal(t, StepSleep, r.Steps[0].Kind)
			before := sentinel(t, s, q)
			rec, err := complete(ctx, s, q, []Completion{{ID: "m", LockedUntil: step.LockedUntil, Outcome: row.outcome, Backoff: row.backoff}})
			require.NoError(t, err)
			require.Equal(t, []bool{true}, rec, row.name)
			if row.wakes {
				assert.NotEqual(t, before, sentinel(t, s, q), "%s: the sentinel moved", row.name)
				assert.Equal(t, r.Steps[0].SleepList, sentinel(t, s, q), "%s: onto the list the sleeper blocks on", row.name)
			} else {
				assert.Equal(t, before, sentinel(t, s, q), "%s: the sentinel stays", row.name)
			}
		}
	})
}

// TestDelayedEnqueueWakesWhenSooner: an enqueue of a delayed message moves
// the sleep sentinel only when the message falls due before every other
// due entry (§11): the sleepers wake at the earliest one anyway.
func TestDelayedEnqueueWakesWhenSooner(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		q := queuetest.QueueName(t)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "first", InitialBackoff: time.Hour})
		at := sentinel(t, s, q)
		require.NotEmpty(t, at, "the first delayed message wakes: nothing was due")
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "later", InitialBackoff: 2 * time.Hour})
		assert.Equal(t, at, sentinel(t, s, q), "falls due after the first: no wake")
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "sooner", InitialBackoff: time.Minute})
		assert.NotEqual(t, at, sentinel(t, s, q), "falls due before the first: a wake")
		at = sentinel(t, s, q)
		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "now"})
		assert.NotEqual(t, at, sentinel(t, s, q), "a message ready now always wakes")
	})
}

// TestPausedSleepOnResumed: a paused queue's polls sleep on the resumed
// list, which enqueues leave alone; a resume puts one element there, on
// which every sleeper's blocking move rotates, so that it wakes them all;
// a pause empties it.
func TestPausedSleepOnResumed(t *testing.T) {
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		q := queuetest.QueueName(t)
		ks := s.Keys(q)
		_, err := Pause(ctx, s.RDB, ks, true)
		require.NoError(t, err)
		r, err := poll(ctx, s, q, PollArgs{LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1})
		require.NoError(t, err)
		require.Equal(t, StepSleep, r.Steps[0].Kind)
		from, to := SleepLists(ks, &r.Steps[0])
		assert.Equal(t, s.Key(q, keys.Resumed), from)
		assert.Equal(t, from, to, "a move that rotates")

		mustEnqueue(t, s, q, "x", &EnqueueMessage{ID: "m"})
		assert.Empty(t, list(t, s, q, keys.Resumed), "enqueues do not wake paused sleepers")

		if s.Real != nil {
			// Sleepers of the resumed list, each on a connection of its
			// own, all blocked before the resume.
			const sleepers = 3
			var wg sync.WaitGroup
			woken := make(chan bool, sleepers)
			for range sleepers {
				wg.Go(func() {
					ok, err := BlockingMove(ctx, s.RDB, from, to, 20*time.Second)
					assert.NoError(t, err)
					woken <- ok
				})
			}
			queuetest.WaitFor(t, "the sleepers blocked", func() bool {
				info, err := s.RDB.Info(ctx, "clients").Result()
				require.NoError(t, err)
				return strings.Contains(info, fmt.Sprintf("blocked_clients:%d\r", sleepers))
			})
			_, err = Pause(ctx, s.RDB, ks, false)
			require.NoError(t, err)
			wg.Wait()
			close(woken)
			for ok := range woken {
				assert.True(t, ok, "woken by the resume")
			}
		} else {
			_, err = Pause(ctx, s.RDB, ks, false)
			require.NoError(t, err)
		}
		ok, err := BlockingMove(ctx, s.RDB, from, to, time.Millisecond)
		require.NoError(t, err)
		assert.True(t, ok, "a sleeper after the resume returns at once")
		assert.Equal(t, []string{"_"}, list(t, s, q, keys.Resumed), "the element stays for later sleepers")
		_, err = Pause(ctx, s.RDB, ks, true)
		require.NoError(t, err)
		assert.Empty(t, list(t, s, q, keys.Resumed), "a pause empties it")
	})
}

// TestProbeHub: the hub's blocking call runs on Redis 7; miniredis lacks
// it, which the probe reports as unsupported rather than as trouble.
func TestProbeHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, s := range []*queuetest.Server{queuetest.MiniServer(t), queuetest.RealServer(t)} {
		err := ProbeHub(ctx, s.RDB, keys.Prefix+"hub:probe")
		if s.Mini != nil {
			assert.True(t, Unsupported(err), "miniredis: %v", err)
		} else {
			assert.NoError(t, err, "redis-server")
		}
	}
}

// TestHubPop: the hub's call answers the list an element arrived in and
// the element, or nothing when its time passed.
func TestHubPop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := queuetest.RealServer(t)
	lists := []string{"carmine:mq:hubpop:a", "carmine:mq:hubpop:b"}
	_, _, ok, err := HubPop(ctx, s.RDB, 10*time.Millisecond, lists)
	require.NoError(t, err)
	assert.False(t, ok, "nothing arrived")
	require.NoError(t, HubPut(ctx, s.RDB, lists[1], "_", false))
	list, elem, ok, err := HubPop(ctx, s.RDB, time.Second, lists)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, lists[1], list)
	assert.Equal(t, "_", elem)
}

// TestEnqueueWakeBacklog: docs/protocol.md §5. An enqueue that pushes k
// ids onto mids-ready moves the sleep sentinel for them only while the
// list held fewer than WakeBacklog*k ids before the call: one id below
// that backlog wakes a sleeper, at it none is woken. Both scripts agree,
// for calls of one message and of three; enqueue.lua still wakes at any
// backlog for a delayed message that comes due before every due entry,
// and a message put on a priority's list.
func TestEnqueueWakeBacklog(t *testing.T) {
	assert.Contains(t, composeSource("wake-backlog"), fmt.Sprintf("\nlocal WAKE_BACKLOG = %d\n", WakeBacklog), "wake-backlog.lua's WAKE_BACKLOG is WakeBacklog")
	queuetest.OnEachServer(t, func(t *testing.T, s *queuetest.Server) {
		ctx := context.Background()
		call := func(k int) EnqueueCall {
			c := EnqueueCall{Token: randomToken(), Sends: new(Sends), Keep: time.Minute, IndexOnly: true}
			for i := range k {
				c.Messages = append(c.Messages, EnqueueMessage{ID: fmt.Sprintf("m%d", i), Data: []byte("x")})
			}
			return c
		}
		for _, k := range []int{1, 3} {
			for _, below := range []bool{true, false} {
				backlog := WakeBacklog * k
				if below {
					backlog--
				}
				name := fmt.Sprintf("%d a call, %d ready before", k, backlog)
				lean, full := queuetest.QueueName(t)+":lean:"+name, queuetest.QueueName(t)+":full:"+name
				backlogged(t, s, lean, backlog)
				backlogged(t, s, full, backlog)
				addedBoth(t, s, lean, full, call(k), name)
				want := "a"
				if below {
					want = "b"
				}
				assert.Equal(t, want, sentinel(t, s, lean), "%s: enqueue-new.lua", name)
				assert.Equal(t, want, sentinel(t, s, full), "%s: enqueue.lua", name)
			}
		}

		// Other reasons to wake hold at any backlog: a delayed message due
		// before every due entry, one put on a priority's list.
		for _, m := range []EnqueueMessage{{ID: "d", InitialBackoff: time.Second}, {ID: "p", Priority: PriorityHigh}} {
			q := queuetest.QueueName(t) + ":" + m.ID
			backlogged(t, s, q, 2*WakeBacklog)
			c := call(1)
			c.Messages = append(c.Messages, m)
			a := Enqueue(ctx, s.RDB, s.Keys(q), c)
			require.NoError(t, a.Err)
			require.Equal(t, []Code{Added, Added}, a.Codes)
			assert.Equal(t, "b", sentinel(t, s, q), "%+v: woken", m)
		}
	})
}

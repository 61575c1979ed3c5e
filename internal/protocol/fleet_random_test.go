package protocol

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestFleetRandom drives this library's enqueue, poll and outcome scripts
// and an emulated Carmine worker and producer (carmineLua) on one queue,
// at random, on a virtual clock, and checks after every step that every
// message a Carmine worker would act on now (hand it out, requeue or
// collect it) is within reach of this library's next poll: on mids-ready
// or mid-circle, or due by an entry of due or windows at or before now;
// that both sides read the same status; and, after this library's
// workers ran two laps (the first ends at the sentinel, which ids a
// Carmine worker's poll moved may stand behind), that the counts are
// exact.
//
// The run is decided by its seed, logged on failure; MQ_FLEET_SEED=n runs
// seed n, MQ_FLEET_STEPS=n that many steps.
func TestFleetRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MQ_FLEET_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = n
	}
	steps := 3000
	if s := os.Getenv("MQ_FLEET_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		steps = n
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (run again with MQ_FLEET_SEED=%d)", seed, seed)
		}
	})
	s := fleetServer(t)
	m := &fleetModel{f: newFleet(t, s, queuetest.QueueName(t)), rng: rand.New(rand.NewPCG(seed, seed>>1|1))}
	for i := range steps {
		what := m.step()
		m.log = append(m.log, fmt.Sprintf("%d: %s", i, what))
		if len(m.log) > 40 {
			m.log = m.log[1:]
		}
		m.check(what == "our laps")
	}
}

// fleetIDs are the ids of the run: few, so that enqueues meet messages
// in every status.
var fleetIDs = []string{"a", "b", "c", "d", "e", "f"}

// fleetModel is the state of a run: the handlings in flight on both
// sides.
type fleetModel struct {
	f   *fleet
	rng *rand.Rand
	log []string // the latest steps, for a failure's message

	ours    []Step           // handed out by this library's polls
	carmine map[string]int64 // id -> the lock a Carmine worker's poll wrote
}

const (
	fleetOurLockMS     = 1000
	fleetCarmineLockMS = 1500
)

func (m *fleetModel) ms(max int64) int64 { return m.rng.Int64N(max) + 1 }

// maybe is a random duration in ms up to max, or 0 half the time.
func (m *fleetModel) maybe(max int64) int64 {
	if m.rng.IntN(2) == 0 {
		return 0
	}
	return m.ms(max)
}

func (m *fleetModel) flip() bool { return m.rng.IntN(2) == 0 }

func (m *fleetModel) id() string { return fleetIDs[m.rng.IntN(len(fleetIDs))] }

// step takes one random step and says what it was.
func (m *fleetModel) step() string {
	f := m.f
	switch k := m.rng.IntN(100); {
	case k < 15: // this library's enqueue, with every option
		msg := EnqueueMessage{ID: m.id(), Data: []byte("ours"),
			InitialBackoff: time.Duration(m.maybe(400)) * time.Millisecond,
			LockTime:       time.Duration(m.maybe(2000)) * time.Millisecond,
			CanUpdate:      m.flip(), CanRequeue: m.flip(), ResetInitialBackoff: m.flip()}
		if m.rng.IntN(4) == 0 {
			msg.At = f.now + m.rng.Int64N(700) - 200
		}
		if m.flip() {
			msg.Metadata = []byte(`{"k":"v"}`)
		}
		msg.Priority = []string{"", PriorityHigh, PriorityLow}[m.rng.IntN(3)] // §18
		code, err := f.enqueue(msg)
		require.NoError(f.t, err)
		return fmt.Sprintf("our enqueue %s bo=%v lock=%v upd=%v rq=%v reset=%v at=%d prio=%q: %s", msg.ID, msg.InitialBackoff,
			msg.LockTime, msg.CanUpdate, msg.CanRequeue, msg.ResetInitialBackoff, msg.At, msg.Priority, code)
	case k < 27: // Carmine's enqueue
		id, bo, lock := m.id(), m.maybe(400), m.maybe(2000)
		upd, rq, reset := m.flip(), m.flip(), m.flip()
		code := f.carmineEnqueue(id, "carmine", bo, lock, upd, rq, reset)
		return fmt.Sprintf("carmine enqueue %s bo=%d lock=%d upd=%v rq=%v reset=%v: %s", id, bo, lock, upd, rq, reset, code)
	case k < 40: // this library's poll, a few steps
		n := 1 + m.rng.IntN(4)
		r := f.mustPoll(PollArgs{LockTime: fleetOurLockMS * time.Millisecond, MaxSteps: n, MaxHandles: 1 + m.rng.IntN(n)})
		var kinds []string
		for _, s := range r.Steps {
			if s.Kind == StepHandle {
				m.ours = append(m.ours, s)
				kinds = append(kinds, "handle "+s.ID)
			} else {
				kinds = append(kinds, string(s.Kind)+" "+s.Reason)
			}
		}
		return "our poll: " + strings.Join(kinds, ", ")
	case k < 52: // this library's outcome
		if len(m.ours) == 0 {
			return "our outcome: none in flight"
		}
		i := m.rng.IntN(len(m.ours))
		s := m.ours[i]
		m.ours = slices.Delete(m.ours, i, i+1)
		if m.rng.IntN(4) == 0 {
			return "our handling of " + s.ID + " abandoned (its process died)"
		}
		c := Completion{ID: s.ID, LockedUntil: s.LockedUntil}
		switch o := m.rng.IntN(12); {
		case o < 3:
			c.Outcome = OutcomeSuccess
		case o < 5:
			c.Outcome, c.Backoff = OutcomeSuccess, time.Duration(m.ms(500))*time.Millisecond
		case o < 7:
			c.Outcome = OutcomeRetry
		case o < 10:
			c.Outcome, c.Backoff = OutcomeRetry, time.Duration(m.ms(500))*time.Millisecond
		case o < 11:
			c.Outcome, c.Error = OutcomeDead, "failed"
		default:
			c.Outcome = OutcomeRelease
		}
		ok := f.complete(c)
		return fmt.Sprintf("our outcome %s %s %v: %v", c.ID, c.Outcome, c.Backoff, ok)
	case k < 65: // one step of a Carmine worker's poll
		kind, what := f.carminePoll(fleetCarmineLockMS)
		if kind == "handle" {
			lock, err := f.rdb.HGet(f.ctx, f.keys[5], what).Int64()
			require.NoError(f.t, err)
			if m.carmine == nil {
				m.carmine = map[string]int64{}
			}
			m.carmine[what] = lock
		}
		return "carmine poll: " + kind + " " + what
	case k < 77: // a Carmine worker's outcome, written if its handler finished within its lock
		if len(m.carmine) == 0 {
			return "carmine outcome: none in flight"
		}
		ids := make([]string, 0, len(m.carmine))
		for id := range m.carmine {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		id := ids[m.rng.IntN(len(ids))]
		lock := m.carmine[id]
		delete(m.carmine, id)
		held, err := f.rdb.HGet(f.ctx, f.keys[5], id).Int64()
		if err == redis.Nil || held != lock || f.now >= lock {
			return "carmine outcome " + id + ": its lock ran out, the handling is abandoned"
		}
		require.NoError(f.t, err)
		var done bool
		var bo int64
		var name string
		switch o := m.rng.IntN(5); o {
		case 0:
			done, name = true, "success"
		case 1:
			done, bo, name = true, m.ms(500), "success with backoff"
		case 2:
			name = "retry"
		case 3:
			bo, name = m.ms(500), "retry with backoff"
		default:
			done, name = true, "error"
		}
		f.carmineOutcome(id, done, bo)
		return fmt.Sprintf("carmine outcome %s: %s %d", id, name, bo)
	case k < 95: // time passes
		d := m.rng.Int64N(250)
		if m.rng.IntN(4) == 0 {
			d = 3000 // past every lock
		}
		f.set(f.now + d)
		return fmt.Sprintf("clock +%d ms", d)
	default: // this library's workers run: two laps meet every id on the circle
		for range 2 {
			m.ours = append(m.ours, f.lap()...)
		}
		return "our laps"
	}
}

// check checks the run's invariants after a step; counts too after laps
// of this library's workers.
func (m *fleetModel) check(counts bool) {
	f := m.f
	f.t.Helper()
	v := f.view()
	history := strings.Join(m.log, "\n")
	require.Empty(f.t, v.stranded, "a message Carmine would act on now is out of this library's reach\n%s", history)
	require.Equal(f.t, v.status, f.ourStatuses(fleetIDs), "statuses differ\n%s", history)
	if counts {
		require.Equal(f.t, v.counts, f.counts(), "counts after a lap (want by status, got)\n%s", history)
	}
}

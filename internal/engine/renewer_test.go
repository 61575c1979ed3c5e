package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// renewStore is a Store whose renewals are told on a channel; each may be
// held until released.
type renewStore struct {
	Store
	renewed chan renewCall
	hold    chan struct{} // when set, each renewal waits for it
}

type renewCall struct {
	id string
	at time.Time
}

func (s *renewStore) Renew(ctx context.Context, rs []protocol.Renewal) ([]int64, error) {
	s.renewed <- renewCall{rs[0].ID, time.Now()}
	if s.hold != nil {
		<-s.hold
	}
	return []int64{rs[0].LockedUntil + 1}, nil
}

type renewEvents struct {
	fakeExecEvents
	mu      sync.Mutex
	renewed []string
}

func (e *renewEvents) LockRenewed(d *Delivery) {
	e.mu.Lock()
	e.renewed = append(e.renewed, d.Step.ID)
	e.mu.Unlock()
}

// handlingLock is the lock of a handling of message id with lockTime,
// its expiry an hour away.
func handlingLock(store Store, id string, lockTime time.Duration, expiry *lockExpiry) *Lock {
	return newLock(store, id, lockTime, 1, time.Now().Add(time.Hour), func(error) {}, expiry)
}

// TestRenewerServesHandlingAfterHandling: one timer serves a handler
// thread's handlings; a firing meant for an earlier handling never renews
// a later one early, and each is renewed every third of its lock time
// while it runs.
func TestRenewerServesHandlingAfterHandling(t *testing.T) {
	t.Parallel()
	store := &renewStore{renewed: make(chan renewCall, 8)}
	expiry := newLockExpiry()
	defer expiry.stop()
	r := newRenewer(0)
	defer r.stop()
	ev := &renewEvents{}
	ctx := context.Background()

	// A ends before its first renewal (in 10 ms); the timer still fires
	// then.
	a := delivery("a", 1, time.Now())
	r.start(ctx, &a, handlingLock(store, "a", 30*time.Millisecond, expiry), ev)
	r.end()
	// B's renewals are due every 40 ms from its start.
	b := delivery("b", 1, time.Now())
	startB := time.Now()
	r.start(ctx, &b, handlingLock(store, "b", 120*time.Millisecond, expiry), ev)
	first := receive(t, store.renewed)
	assert.Equal(t, "b", first.id)
	assert.False(t, first.at.Before(startB.Add(40*time.Millisecond)), "B renewed %v after its start", first.at.Sub(startB))
	second := receive(t, store.renewed)
	assert.Equal(t, "b", second.id)
	assert.False(t, second.at.Before(startB.Add(80*time.Millisecond)), "B renewed again %v after its start", second.at.Sub(startB))
	r.end()
	ev.mu.Lock()
	assert.GreaterOrEqual(t, len(ev.renewed), 1)
	assert.NotContains(t, ev.renewed, "a", "A ended before its time")
	ev.mu.Unlock()
}

// TestRenewerEndWaitsForRenewal: end returns only once a renewal under
// way has returned, so that none runs once the outcome is settled, and
// the handling is renewed no more after it.
func TestRenewerEndWaitsForRenewal(t *testing.T) {
	t.Parallel()
	store := &renewStore{renewed: make(chan renewCall, 8), hold: make(chan struct{})}
	expiry := newLockExpiry()
	defer expiry.stop()
	r := newRenewer(0)
	defer r.stop()
	ev := &renewEvents{}
	d := delivery("a", 1, time.Now())
	r.start(context.Background(), &d, handlingLock(store, "a", 3*time.Millisecond, expiry), ev)
	receive(t, store.renewed) // under way, held
	ended := make(chan struct{})
	go func() {
		r.end()
		close(ended)
	}()
	select {
	case <-ended:
		t.Fatal("end returned while a renewal was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(store.hold)
	receive(t, ended)
	ev.mu.Lock()
	assert.Equal(t, []string{"a"}, ev.renewed)
	ev.mu.Unlock()
	// Another handling's timer firing does not renew the one that ended.
	d2 := delivery("b", 1, time.Now())
	r.start(context.Background(), &d2, handlingLock(store, "b", time.Hour, expiry), ev)
	r.end()
	select {
	case c := <-store.renewed:
		require.Fail(t, "renewed after its end", c.id)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestRenewerSkipsLockRunOut: a renewal due once the lock's deadline has
// passed (a process stalled past it) is not sent, nor the renewals
// missed meanwhile: the lock's expiry ends the handling. A renewal due
// before it is sent.
func TestRenewerSkipsLockRunOut(t *testing.T) {
	t.Parallel()
	store := &renewStore{renewed: make(chan renewCall, 8)}
	expiry := newLockExpiry()
	defer expiry.stop()
	r := newRenewer(time.Hour) // its timer never fires in the test: fire is called below
	defer r.stop()
	ev := &renewEvents{}
	ctx := context.Background()
	// due has the renewal due since ago, and fires the timer. (A renewal
	// sent from a due time more than a period ago would be followed by
	// the next one at once, on the timer's goroutine, as a ticker's.)
	due := func(ago time.Duration) {
		r.mu.Lock()
		r.next = time.Now().Add(-ago)
		r.mu.Unlock()
		r.fire()
	}

	a := delivery("a", 1, time.Now())
	r.start(ctx, &a, handlingLock(store, "a", 3*time.Hour, expiry), ev)
	due(time.Millisecond)
	assert.Equal(t, "a", receive(t, store.renewed).id, "a live lock is renewed")
	r.end()

	b := delivery("b", 1, time.Now())
	lock := newLock(store, "b", 3*time.Hour, 1, time.Now().Add(-time.Millisecond), func(error) {}, expiry)
	r.start(ctx, &b, lock, ev)
	due(10 * time.Hour) // ten renewals missed
	due(10 * time.Hour)
	r.end()
	select {
	case c := <-store.renewed:
		t.Fatalf("renewal of %s sent past its lock's deadline", c.id)
	default:
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	assert.Equal(t, []string{"a"}, ev.renewed)
}

// TestRenewerNoCatchUpAfterStall: a renewal sent after a stall that let
// many periods pass is followed by the next one a period later, not by
// one for each period missed, back to back.
func TestRenewerNoCatchUpAfterStall(t *testing.T) {
	t.Parallel()
	store := &renewStore{renewed: make(chan renewCall, 64)}
	expiry := newLockExpiry()
	defer expiry.stop()
	r := newRenewer(time.Hour)
	defer r.stop()
	ev := &renewEvents{}
	a := delivery("a", 1, time.Now())
	// (The store's channel has room for every renewal a catch-up would
	// send, so that a failure is an assertion, not a blocked renewal.)
	r.start(context.Background(), &a, handlingLock(store, "a", 30*time.Hour, expiry), ev)
	r.mu.Lock()
	r.next = time.Now().Add(-10 * time.Hour) // ten renewals missed
	r.mu.Unlock()
	r.fire()
	assert.Equal(t, "a", receive(t, store.renewed).id, "the live lock is renewed")
	r.mu.Lock()
	next := r.next
	r.mu.Unlock()
	assert.True(t, next.After(time.Now().Add(30*time.Minute)),
		"the next renewal is due a period after this one, not at once: %v", time.Until(next))
	r.end()
	select {
	case c := <-store.renewed:
		t.Fatalf("renewal of %s sent again at once", c.id)
	default:
	}
}

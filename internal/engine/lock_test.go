package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLockExpiryServesHandlingAfterHandling: one timer serves a handler
// thread's handlings; a firing meant for an earlier handling never ends a
// later one early, and each is cancelled once its own time has come.
func TestLockExpiryServesHandlingAfterHandling(t *testing.T) {
	t.Parallel()
	e := newLockExpiry()
	defer e.stop()
	type cancelled struct {
		at    time.Time
		cause error
	}
	watch := func() (context.CancelCauseFunc, <-chan cancelled) {
		ch := make(chan cancelled, 1)
		return func(cause error) { ch <- cancelled{time.Now(), cause} }, ch
	}

	// A finishes before its time: nothing is cancelled, though the timer
	// still fires at A's time.
	cancelA, a := watch()
	e.arm(time.Now().Add(10*time.Millisecond), cancelA)
	e.disarm()
	// B's time is later; its renewal moves it later still.
	cancelB, b := watch()
	atB := time.Now().Add(40 * time.Millisecond)
	e.arm(atB, cancelB)
	atB = atB.Add(40 * time.Millisecond)
	e.arm(atB, cancelB)
	select {
	case got := <-b:
		assert.ErrorIs(t, got.cause, ErrLockExpired)
		assert.False(t, got.at.Before(atB), "B cancelled %v before its time", atB.Sub(got.at))
	case <-time.After(10 * time.Second):
		t.Fatal("B was never cancelled")
	}
	select {
	case <-a:
		t.Error("A was cancelled after it finished")
	default:
	}
}

// TestLockRenewMovesDeadline: a renewal takes the token Redis answered and
// moves the time before which the lock cannot have run out to a lock time
// after the renewal was sent, past the time the lock was taken with: the
// handling's context now ends then (lockExpiry.arm), not before.
func TestLockRenewMovesDeadline(t *testing.T) {
	t.Parallel()
	store := &renewStore{renewed: make(chan renewCall, 1)}
	expiry := newLockExpiry()
	defer expiry.stop()
	taken := time.Now().Add(time.Minute)
	lock := newLock(store, "a", time.Hour, 1, taken, func(error) {}, expiry)
	require.Equal(t, taken, lock.deadline())
	sent := time.Now()
	require.NoError(t, lock.Renew(context.Background()))
	assert.Equal(t, int64(2), lock.token(), "the token Redis answered")
	assert.False(t, lock.deadline().Before(sent.Add(time.Hour)), "deadline %v, renewal sent %v", lock.deadline(), sent)
}

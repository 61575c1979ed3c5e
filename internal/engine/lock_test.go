package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

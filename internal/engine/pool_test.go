package engine

import (
	"testing"
	"time"
)

func poolRooms(n, handlers, prefetch int) []*Room {
	rs := make([]*Room, n)
	for i := range rs {
		rs[i] = NewRoom(handlers, prefetch, false, 30*time.Second)
	}
	return rs
}

// TestPoolWeighted: each awake queue is owed its share; a sleeping one
// lends it, and gets it back as the others' messages finish.
func TestPoolWeighted(t *testing.T) {
	rs := poolRooms(2, 4, -1)
	p := NewPool(false, rs, []int{3, 1})
	p.Reset(1)
	if n := rs[0].TryTake(0); n != 3 {
		t.Fatalf("a took %d with b awake, want its share 3", n)
	}
	if n := rs[1].TryTake(0); n != 1 {
		t.Fatalf("b took %d, want 1", n)
	}
	rs[1].Finish(1)
	if n := rs[0].TryTake(0); n != 0 {
		t.Fatalf("a took %d of b's share while b is awake", n)
	}
	rs[1].LoopAwake(-1) // b came back empty: it lends its share
	if n := rs[0].TryTake(0); n != 1 {
		t.Fatalf("a took %d with b asleep, want the 1 lent", n)
	}
	rs[1].LoopAwake(1)
	if n := rs[1].TryTake(0); n != 0 {
		t.Fatalf("b took %d before a finished what it borrowed", n)
	}
	rs[0].Finish(1)
	if n := rs[1].TryTake(0); n != 1 {
		t.Fatalf("b took %d once a finished one, want 1", n)
	}
}

// TestPoolPrefetchOfOneQueue: a queue whose handlings are quick
// prefetches; one whose handlings are slow still gets its share of what
// the worker holds, not a share of the handlers that the other's
// prefetch already exceeds.
func TestPoolPrefetchOfOneQueue(t *testing.T) {
	rs := poolRooms(2, 4, 32)
	p := NewPool(false, rs, []int{3, 1})
	p.Reset(1)
	for range 4 {
		rs[0].handled(0) // quick handlings: a prefetches
	}
	if !rs[0].Prefetching() || rs[1].Prefetching() {
		t.Fatal("want a prefetching and b not")
	}
	if n := rs[0].TryTake(0); n != 27 {
		t.Fatalf("a took %d, want 27 of 36 (b is owed 9)", n)
	}
	if n := rs[1].TryTake(0); n != 9 {
		t.Fatalf("b took %d, want its 9", n)
	}
}

// TestPoolStrict: a queue may poll only while every queue before it
// sleeps; all the room goes to whichever polls.
func TestPoolStrict(t *testing.T) {
	rs := poolRooms(3, 2, -1)
	p := NewPool(true, rs, nil)
	p.Reset(1)
	if !rs[0].MayPoll() || rs[1].MayPoll() || rs[2].MayPoll() {
		t.Fatal("at the start only the first queue may poll")
	}
	changed := p.changed.wait()
	rs[0].LoopAwake(-1)
	select {
	case <-changed:
	default:
		t.Fatal("no wake when the first queue went to sleep")
	}
	if !rs[1].MayPoll() || rs[2].MayPoll() {
		t.Fatal("want the second queue's turn only")
	}
	if n := rs[1].TryTake(0); n != 2 {
		t.Fatalf("b took %d, want all 2", n)
	}
	rs[0].LoopAwake(1)
	if rs[1].MayPoll() {
		t.Fatal("the second queue may poll while the first is awake")
	}
}

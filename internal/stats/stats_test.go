package stats

import (
	"sync"
	"testing"
)

func TestWindowSummary(t *testing.T) {
	w := NewWindow(100)
	if got := w.Summary(); got != (Summary{}) {
		t.Fatalf("empty window: %+v", got)
	}
	for i := 1; i <= 100; i++ {
		w.Add(float64(i))
	}
	s := w.Summary()
	want := Summary{Last: 100, Min: 1, Max: 100, Mean: 50.5, MAD: 25, Variance: 833.25, P50: 50, P90: 90, P99: 99, Count: 100}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestWindowKeepsLatest(t *testing.T) {
	w := NewWindow(10)
	for i := 1; i <= 25; i++ {
		w.Add(float64(i))
	}
	s := w.Summary()
	if s.Min != 16 || s.Max != 25 || s.Count != 25 || s.Last != 25 {
		t.Fatalf("got %+v, want the window 16..25 of 25 samples", s)
	}
	w.Reset()
	if s := w.Summary(); s.Count != 0 || s.Max != 0 {
		t.Fatalf("after reset: %+v", s)
	}
}

func TestWindowConcurrent(t *testing.T) {
	w := NewWindow(50)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				w.Add(1)
				_ = w.Summary()
			}
		}()
	}
	wg.Wait()
	if s := w.Summary(); s.Count != 4000 || s.Mean != 1 {
		t.Fatalf("got %+v", s)
	}
}

package mq

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestSubscribeNeverBlocks: a subscriber that reads nothing costs the
// worker nothing: events beyond the channel's room are dropped, the
// first ones kept in order, and only the kinds asked for are sent.
func TestSubscribeNeverBlocks(t *testing.T) {
	w := &Worker{queue: "q"}
	handled, stopHandled := w.Subscribe(EventHandled)
	defer stopHandled()
	all, stopAll := w.Subscribe()
	defer stopAll()
	for i := range subscriberBuffer + 10 {
		w.subs.emit(Event{Kind: EventHandled, Attempt: i}) // would block here if emit waited
	}
	w.subs.emit(Event{Kind: EventAsleep})
	assert.Len(t, handled, subscriberBuffer, "full: the rest dropped")
	assert.Len(t, all, subscriberBuffer)
	assert.Equal(t, 0, (<-handled).Attempt, "the first kept")
	assert.Equal(t, EventHandled, (<-all).Kind)
	stopHandled()
	_, open := <-handled
	for open { // drain: the channel closes after what it holds
		_, open = <-handled
	}
	assert.False(t, open, "closed by its stop")
}

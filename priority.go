package mq

import (
	"fmt"

	"github.com/gocarmine/mq/internal/protocol"
)

// Priority is a message's priority within its queue (docs/protocol.md
// §18). A worker of this library hands out every high message ready
// before any normal one, and every normal one before any low one; a
// Carmine worker on the same queue ignores priorities.
type Priority int

// The priorities. The zero value is PriorityNormal.
const (
	// PriorityNormal is the default: the message goes onto Carmine's
	// mids-ready, as without priorities.
	PriorityNormal Priority = 0
	// PriorityHigh messages are handed out before normal and low ones.
	PriorityHigh Priority = 1
	// PriorityLow messages are handed out after normal and high ones.
	PriorityLow Priority = -1
)

// String answers "high", "normal" or "low".
func (p Priority) String() string {
	switch p {
	case PriorityHigh:
		return "high"
	case PriorityNormal:
		return "normal"
	case PriorityLow:
		return "low"
	}
	return fmt.Sprintf("Priority(%d)", int(p))
}

// priorityArg answers the priority as the scripts spell it, or an error
// for a value that is none of the three.
func priorityArg(p Priority) (string, error) {
	switch p {
	case PriorityNormal:
		return "", nil
	case PriorityHigh:
		return protocol.PriorityHigh, nil
	case PriorityLow:
		return protocol.PriorityLow, nil
	}
	return "", fmt.Errorf("%w: Priority %d is not PriorityHigh, PriorityNormal or PriorityLow", ErrInvalidOption, int(p))
}

// priorityOf answers the priority the scripts answered ("h", "l" or "").
func priorityOf(s string) Priority {
	switch s {
	case protocol.PriorityHigh:
		return PriorityHigh
	case protocol.PriorityLow:
		return PriorityLow
	}
	return PriorityNormal
}

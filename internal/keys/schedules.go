package keys

// A queue's schedules (docs/protocol.md §15) live in two keys of the
// queue's slot that are not in [All]: only the scheduler's scripts bind
// them, so that the other scripts are not passed keys they never touch.
// Carmine ignores them.
const (
	// SchedulesSuffix names the hash of schedule name -> encoded spec.
	SchedulesSuffix = "schedules"
	// ScheduleNextSuffix names the sorted set of schedule name -> the
	// server time of its next tick (ms); a paused schedule has no entry.
	ScheduleNextSuffix = "schedule-next"
)

// Schedules returns the queue's schedules hash and schedule-next sorted
// set, in that order.
func Schedules(queue string, cluster bool) []string {
	p := QueuePrefix(queue, cluster)
	return []string{p + SchedulesSuffix, p + ScheduleNextSuffix}
}

package mqtest

import (
	"context"
	"testing"

	"github.com/gocarmine/mq"
)

// EndBackoffs ends the backoff of every message of queue that waits one
// out (status queued-with-backoff: a delay, At, or a failure's retry), so
// that the next [Drain] hands them out, and returns how many it ended. A
// message keeps its content, attempts, metadata, policy and priority: the
// backoff is reset by an enqueue of its id with ResetInitialBackoff, which
// replaces nothing else. Messages in a dedupe window (done-with-backoff)
// are left. It fails the test when Redis refuses.
//
// To run a queue until every message has an outcome for good:
//
//	for {
//		res, err := mqtest.Drain(ctx, c, queue, h)
//		...
//		if mqtest.EndBackoffs(t, c, queue) == 0 {
//			break
//		}
//	}
func EndBackoffs(t testing.TB, c *mq.Client, queue string) int {
	t.Helper()
	n := 0
	for _, m := range Enqueued(t, c, queue) {
		if m.Status != mq.StatusQueuedWithBackoff {
			continue
		}
		// The content is sent as stored; the enqueue does not write it.
		r, err := c.Enqueue(context.Background(), queue, mq.Raw(m.Data), &mq.EnqueueOptions{
			MessageID: m.ID, ResetInitialBackoff: true,
		})
		if err != nil {
			t.Fatalf("mqtest: end the backoff of %q in %q: %v", m.ID, queue, err)
		}
		if r.OK() {
			n++
		}
	}
	return n
}

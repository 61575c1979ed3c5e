package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/protocol"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// takeOne hands out the next message of queue as a worker's poll would,
// through the protocol alone, and answers its step.
func takeOne(t *testing.T, c *Client, queue string) protocol.Step {
	t.Helper()
	r, err := protocol.Poll(context.Background(), c.rdb, c.keys(queue), protocol.PollArgs{
		LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: 1, Poller: randomID(), Seq: 1})
	require.NoError(t, err)
	require.Len(t, r.Steps, 1)
	require.Equal(t, protocol.StepHandle, r.Steps[0].Kind)
	return r.Steps[0]
}

// record writes one outcome of a handling taken with takeOne.
func record(t *testing.T, c *Client, queue string, st protocol.Step, outcome protocol.Outcome, backoff time.Duration, errText string) {
	t.Helper()
	r, err := protocol.Poll(context.Background(), c.rdb, c.keys(queue), protocol.PollArgs{
		LockTime: time.Minute, Sleeps: testSleeps, Poller: randomID(), Seq: 1,
		Completions: []protocol.Completion{{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: outcome, Backoff: backoff, Error: errText}}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, r.Recorded)
}

// TestInspectorMessage reads one message in every status it can have
// with this library's workers, on a real Redis: what Message answers is
// what each step of the protocol left.
func TestInspectorMessage(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	in := c.Inspector()
	ctx := context.Background()
	q := queuetest.QueueName(t)
	read := func(queue, id string) MessageInfo {
		t.Helper()
		m, err := in.Message(ctx, queue, id)
		require.NoError(t, err)
		assert.Equal(t, id, m.ID)
		return m
	}
	// ms is a server time of a step's answer, as a time.
	ms := func(n int64) time.Time { return time.UnixMilli(n) }

	t.Run("queued", func(t *testing.T) {
		before := s.Now(t)
		enqueue(t, c, q, "hello", &EnqueueOptions{MessageID: "queued", Metadata: map[string]string{"trace": "t1"}, LockTime: 5 * time.Second})
		after := s.Now(t)
		m := read(q, "queued")
		assert.Equal(t, StatusQueued, m.Status)
		assert.Equal(t, "hello", m.Value)
		require.NoError(t, m.DecodeErr)
		assert.Equal(t, map[string]string{"trace": "t1"}, m.Metadata)
		assert.Equal(t, 5*time.Second, m.LockTime)
		assert.Zero(t, m.Attempts)
		assert.True(t, !m.FirstEnqueued.Before(ms(before)) && !m.FirstEnqueued.After(ms(after)), "first enqueued %v, not within %d-%d", m.FirstEnqueued, before, after)
		assert.Zero(t, m.BackoffUntil)
		assert.Zero(t, m.LockedUntil)
		assert.Nil(t, m.Requeue)
		assert.Nil(t, m.DeadLetter)
	})

	t.Run("delayed", func(t *testing.T) {
		before := s.Now(t)
		enqueue(t, c, q, "later", &EnqueueOptions{MessageID: "delayed", InitialBackoff: time.Hour})
		after := s.Now(t)
		m := read(q, "delayed")
		assert.Equal(t, StatusQueuedWithBackoff, m.Status)
		assert.Equal(t, "later", m.Value)
		assert.True(t, !m.BackoffUntil.Before(ms(before+3600_000)) && !m.BackoffUntil.After(ms(after+3600_000)), "backoff until %v", m.BackoffUntil)
		assert.Greater(t, m.Backoff, 59*time.Minute)
		assert.Zero(t, m.LockedUntil)
	})

	t.Run("locked and requeued", func(t *testing.T) {
		q := q + ":locked"
		enqueue(t, c, q, "first", &EnqueueOptions{MessageID: "m"})
		st := takeOne(t, c, q)
		m := read(q, "m")
		assert.Equal(t, StatusLocked, m.Status)
		assert.Equal(t, int64(1), m.Attempts)
		assert.Equal(t, ms(st.LockedUntil), m.LockedUntil)
		assert.Nil(t, m.Requeue)

		enqueue(t, c, q, "second", &EnqueueOptions{MessageID: "m", CanRequeue: true, LockTime: 7 * time.Second})
		m = read(q, "m")
		assert.Equal(t, StatusLockedWithRequeue, m.Status)
		assert.Equal(t, "first", m.Value, "the handling's content")
		require.NotNil(t, m.Requeue)
		assert.Equal(t, "second", m.Requeue.Value)
		assert.Equal(t, 7*time.Second, m.Requeue.LockTime)

		// Done in a dedupe window with the requeue waiting.
		record(t, c, q, st, protocol.OutcomeSuccess, time.Hour, "")
		m = read(q, "m")
		assert.Equal(t, StatusDoneWithRequeue, m.Status)
		require.NotNil(t, m.Requeue)
		assert.Equal(t, "second", m.Requeue.Value)
		assert.Zero(t, m.LockedUntil)
	})

	t.Run("done in window", func(t *testing.T) {
		q := q + ":done"
		enqueue(t, c, q, "once", &EnqueueOptions{MessageID: "m"})
		st := takeOne(t, c, q)
		record(t, c, q, st, protocol.OutcomeSuccess, time.Hour, "")
		m := read(q, "m")
		assert.Equal(t, StatusDoneWithBackoff, m.Status)
		assert.Empty(t, m.Data, "a window keeps no content")
		assert.Greater(t, m.Backoff, 59*time.Minute)
		assert.False(t, m.BackoffUntil.IsZero())
		assert.Equal(t, int64(1), m.Attempts)
	})

	t.Run("dead letter", func(t *testing.T) {
		q := q + ":dead"
		enqueue(t, c, q, "doomed", &EnqueueOptions{MessageID: "m", Metadata: map[string]string{"k": "v"}})
		st := takeOne(t, c, q)
		record(t, c, q, st, protocol.OutcomeDead, 0, "boom")
		m := read(q, "m")
		assert.Equal(t, StatusNone, m.Status)
		assert.Nil(t, m.Data)
		require.NotNil(t, m.DeadLetter)
		assert.Equal(t, OutcomeDead, m.DeadLetter.Reason)
		assert.Equal(t, "boom", m.DeadLetter.Error)
		assert.Equal(t, int64(1), m.DeadLetter.Attempts)
		var v string
		require.NoError(t, m.DeadLetter.Decode(&v))
		assert.Equal(t, "doomed", v)

		// Enqueued again, it is in the queue and still a dead letter.
		enqueue(t, c, q, "again", &EnqueueOptions{MessageID: "m"})
		m = read(q, "m")
		assert.Equal(t, StatusQueued, m.Status)
		assert.Equal(t, "again", m.Value)
		require.NotNil(t, m.DeadLetter)
		assert.Equal(t, "boom", m.DeadLetter.Error)
	})

	t.Run("absent", func(t *testing.T) {
		m := read(q, "never")
		assert.Equal(t, MessageInfo{ID: "never"}, m)
	})

	t.Run("undecodable", func(t *testing.T) {
		enqueue(t, c, q, Raw("\xc1"), &EnqueueOptions{MessageID: "raw"})
		m := read(q, "raw")
		assert.Equal(t, StatusQueued, m.Status)
		assert.ErrorIs(t, m.DecodeErr, ErrDecode)
		assert.Equal(t, []byte("\xc1"), m.Data)
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := in.Message(ctx, q, "")
		assert.ErrorIs(t, err, ErrInvalidMessageID)
		_, err = in.Message(ctx, "a*", "m")
		assert.ErrorIs(t, err, ErrInvalidQueueName)
	})
}

// TestDeadReason: a dead letter's stored reason reads as an Outcome, the
// "failed" of records stored before the Outcome type included.
func TestDeadReason(t *testing.T) {
	t.Parallel()
	for stored, want := range map[string]Outcome{
		"dead": OutcomeDead, "failed": OutcomeDead, "quarantined": OutcomeQuarantined, "other": "other",
	} {
		assert.Equal(t, want, deadReason(stored), stored)
	}
}

// TestDeadLettersPagingWhileLettersArrive pages through a queue's dead
// letters on a real Redis while more die between the pages, and while
// the letter a cursor stands on is requeued: each letter present at the
// start is seen once, none twice, and nothing else but letters that
// arrived meanwhile.
func TestDeadLettersPagingWhileLettersArrive(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	c := newClient(t, s, nil)
	in := c.Inspector()
	ctx := context.Background()
	q := queuetest.QueueName(t)
	// bury makes dead letters of ids in one script call, so that they die
	// at one server time and their order is their ids'.
	bury := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			enqueue(t, c, q, "content of "+id, &EnqueueOptions{MessageID: id})
		}
		r, err := protocol.Poll(ctx, c.rdb, c.keys(q), protocol.PollArgs{
			LockTime: time.Minute, Sleeps: testSleeps, MaxSteps: len(ids), Poller: randomID(), Seq: 1})
		require.NoError(t, err)
		require.Len(t, r.Steps, len(ids))
		var done []protocol.Completion
		for _, st := range r.Steps {
			require.Equal(t, protocol.StepHandle, st.Kind)
			done = append(done, protocol.Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: protocol.OutcomeDead, Error: "failed: " + st.ID})
		}
		r, err = protocol.Poll(ctx, c.rdb, c.keys(q), protocol.PollArgs{
			LockTime: time.Minute, Sleeps: testSleeps, Poller: randomID(), Seq: 1, Completions: done})
		require.NoError(t, err)
		require.Len(t, r.Recorded, len(ids))
	}
	initial := map[string]bool{}
	for b := range 5 {
		var ids []string
		for i := range 5 {
			id := fmt.Sprintf("l%d%d", b, i)
			ids = append(ids, id)
			initial[id] = true
		}
		bury(ids...)
	}

	arrived := map[string]bool{}
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		page, err := in.DeadLetters(ctx, q, cursor, 4)
		require.NoError(t, err)
		pages++
		require.Less(t, pages, 20, "the listing never ends")
		for _, d := range page.Items {
			seen[d.ID]++
			assert.Equal(t, "failed: "+d.ID, d.Error)
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
		// More letters die before the next page is read.
		var ids []string
		for j := range 3 {
			id := fmt.Sprintf("n%02d-%d", pages, j)
			ids = append(ids, id)
			arrived[id] = true
		}
		bury(ids...)
		// On the second page, the cursor's own letter leaves.
		if pages == 2 {
			last := page.Items[len(page.Items)-1].ID
			require.NoError(t, in.RequeueDeadLetter(ctx, q, last))
			st := takeOne(t, c, q) // (and is handled: it does not die again)
			record(t, c, q, st, protocol.OutcomeSuccess, 0, "")
		}
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s seen %d times", id, n)
		assert.True(t, initial[id] || arrived[id], "%s came from nowhere", id)
	}
	for id := range initial {
		assert.Contains(t, seen, id, "skipped")
	}
	assert.Equal(t, 7, pages, "25 letters, 4 a page")

	// A cursor that is not one answers ErrInvalidOption.
	for _, bad := range []string{"x", "12", "-1.YQ", "12.!!"} {
		_, err := in.DeadLetters(ctx, q, bad, 4)
		assert.ErrorIs(t, err, ErrInvalidOption, bad)
	}
}

// TestMessageOneRoundTrip: Inspector.Message reads a held message with
// its progress and cancel in one round trip (once its script is loaded),
// and the progress and cancel are those of the message it read.
func TestMessageOneRoundTrip(t *testing.T) {
	t.Parallel()
	s := queuetest.RealServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Real.Addr})
	t.Cleanup(func() { rdb.Close() })
	var trips atomic.Int64
	rdb.AddHook(countingHook{trips: &trips})
	c, err := New(rdb, &Config{Logger: testLogger(t)})
	require.NoError(t, err)
	q := queuetest.QueueName(t)
	ctx := context.Background()
	enqueue(t, c, q, "x", &EnqueueOptions{MessageID: "x"})
	step := takeOne(t, c, q)
	_, err = protocol.Renew(ctx, c.rdb, c.keys(q), []protocol.Renewal{{ID: "x", LockedUntil: step.LockedUntil,
		LockTime: time.Minute, Progress: protocol.EncodeProgress(3, "three")}})
	require.NoError(t, err)
	_, err = c.Inspector().Message(ctx, q, "x") // (loads the script)
	require.NoError(t, err)
	trips.Store(0)
	info, err := c.Inspector().Message(ctx, q, "x")
	require.NoError(t, err)
	assert.Equal(t, int64(1), trips.Load(), "one round trip")
	require.NotNil(t, info.Progress)
	assert.Equal(t, 3.0, info.Progress.N)
	assert.Equal(t, "three", info.Progress.Note)
	assert.True(t, info.CancelRequested.IsZero())
}

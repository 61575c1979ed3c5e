package mqtest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/mqtest"
)

// The code under test: it enqueues a welcome email for a user.
func signUp(ctx context.Context, c *mq.Client, email string) error {
	_, err := c.Enqueue(ctx, "emails", map[string]string{"to": email}, &mq.EnqueueOptions{
		MessageID: "welcome:" + email,
		Priority:  mq.PriorityHigh,
		Metadata:  map[string]string{"kind": "welcome"},
	})
	return err
}

// A test asserts what signUp enqueued, then runs the queue through the
// handler and looks at each outcome. A real test would pass its own t.
func Example() {
	t := &testing.T{}
	ctx := context.Background()
	c := mqtest.New(t)

	if err := signUp(ctx, c, "ann@example.com"); err != nil {
		fmt.Println(err)
		return
	}
	if err := signUp(ctx, c, "bad address"); err != nil {
		fmt.Println(err)
		return
	}
	mqtest.RequireEnqueued(t, c, "emails", mqtest.Want{
		ID:       "welcome:ann@example.com",
		Value:    map[string]string{"to": "ann@example.com"},
		Priority: mq.PriorityHigh,
		Metadata: map[string]string{"kind": "welcome"},
	})

	res, err := mqtest.Drain(ctx, c, "emails", mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
		var email map[string]string
		if err := m.Decode(&email); err != nil {
			return err
		}
		if email["to"] == "bad address" {
			return mq.Final(errors.New("no such address"))
		}
		return nil // sent
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sent:", res.IDs(mq.OutcomeSucceeded))
	fmt.Println("dead:", res.IDs(mq.OutcomeDead))
	fmt.Println("left:", len(mqtest.Enqueued(t, c, "emails")))
	// Output:
	// sent: [welcome:ann@example.com]
	// dead: [welcome:bad address]
	// left: 0
}

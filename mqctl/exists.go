package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gocarmine/mq"
)

// queueMustExist refuses a queue that does not exist (the library's
// Inspector.QueueExists: not in the queue registry, and holding no
// message, dead letter or pause), with exit code 3: a typo in a queue's
// name must not read as an empty queue, nor create one.
func queueMustExist(ctx context.Context, c *mq.Client, queue string) error {
	ok, err := c.Inspector().QueueExists(ctx, queue)
	if err != nil {
		return err
	}
	if !ok {
		return &exitError{code: exitNotFound, err: fmt.Errorf("%w: %s (mqctl queues lists those that exist)",
			mq.ErrQueueNotFound, strconv.Quote(queue))}
	}
	return nil
}

package mq_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gocarmine/mq"
)

// A schedule of every second, enqueued by the worker's scheduler and
// handled by the same worker; a report at 9:00 on weekdays, New York
// time, listed with its next tick.
func ExampleInspector_SetSchedule() {
	ctx := context.Background()
	rdb, done := newRedis()
	defer done()
	client, err := mq.New(rdb, nil)
	if err != nil {
		panic(err)
	}
	in := client.Inspector()
	if _, err := in.SetSchedule(ctx, "jobs", mq.Schedule{Name: "heartbeat", Every: time.Second, Message: "ping"}); err != nil {
		panic(err)
	}
	if _, err := in.SetSchedule(ctx, "jobs", mq.Schedule{Name: "report", Cron: "0 9 * * 1-5",
		Zone: "America/New_York", Message: "weekly numbers"}); err != nil {
		panic(err)
	}

	handled := make(chan string, 1)
	worker, err := client.StartWorker(ctx, "jobs", &mq.WorkerConfig{
		Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			var v string
			if err := m.Decode(&v); err != nil {
				return err
			}
			select {
			case handled <- v + " (" + m.ID[:strings.LastIndexByte(m.ID, ':')] + ":<tick ms>)":
			default:
			}
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("handled:", <-handled)
	if err := worker.Stop(ctx); err != nil {
		panic(err)
	}

	list, err := in.Schedules(ctx, "jobs")
	if err != nil {
		panic(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	for _, s := range list {
		if s.Cron != "" {
			fmt.Println(s.Name, s.Cron, "next at", s.Next.In(ny).Format("15:04"), "in New York")
		}
	}
	// Output:
	// handled: ping (sched:heartbeat:<tick ms>)
	// report 0 9 * * 1-5 next at 09:00 in New York
}

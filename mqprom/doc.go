// Package mqprom exports the queues and workers of github.com/gocarmine/mq
// to Prometheus, through client_golang. It lives in a module of its own so
// that the mq module does not depend on Prometheus.
//
// Three collectors, to register with a prometheus.Registerer:
//
//   - [QueueCollector] reads every queue's counts by state, and its dead
//     letters, from Redis on each scrape (Inspector.QueueCounts, one round
//     trip per queue, within a deadline). The counts are Redis's, so one
//     scrape of any one process covers the workers of every process,
//     Carmine's included.
//   - [WorkerCollector] exports this process's workers: counters from
//     Worker.Stats of each worker given to Add, and histograms of handling
//     and queueing time fed by every handling, as the workers'
//     WorkerConfig.Observer.
//   - [ScheduleCollector] reads the periodic schedules of the queues it is
//     given (Inspector.Schedules): each one's next tick and paused state.
//
// Typical use:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(mqprom.NewQueueCollector(client, nil))
//	workers := mqprom.NewWorkerCollector(nil)
//	reg.MustRegister(workers)
//	w, err := client.StartWorker(ctx, "emails", &mq.WorkerConfig{Handler: h, Observer: workers})
//	...
//	workers.Add(w)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Metrics
//
// Every name starts with mq_. From [QueueCollector], read from Redis:
//
//	mq_queue_messages{queue,state}     gauge  messages by state: queued, locked, backoff, done
//	mq_queue_total_messages{queue}     gauge  messages in the queue, whatever their state
//	mq_queue_dead_letters{queue}       gauge  dead letters (Inspector.DeadLetters), not in the total
//	mq_queue_results{queue}            gauge  results kept (Message.SetResult, Inspector.Result)
//	mq_queue_paused{queue}             gauge  1 while the queue is paused
//	mq_history_handlings_last_minute{queue,kind}  gauge  handlings in the last whole minute: processed, failed, dead
//	mq_history_handlings_last_hour{queue,kind}    gauge  the same over the last 60 whole minutes
//	mq_queue_limit_slots_held{queue}   gauge  concurrency slots held (Inspector.Limits), for queues with limits
//	mq_queue_limit_parked{queue}       gauge  messages parked for want of a slot of their limit key
//	mq_handoffs_pending{queue}         gauge  hand-off records waiting for a relay (§22)
//	mq_queue_stale{queue}              gauge  1 while the series above hold the counts last read (Redis unreadable)
//	mq_scrape_errors_total{op}         counter  failed reads: op queue_names (the listing) or queue_counts (one per queue)
//	mq_scrape_error                    gauge  1 if the last scrape failed to read anything
//	mq_scrape_duration_seconds         gauge  how long the last scrape read Redis
//
// The states are the fields of mq.QueueCounts, whose doc says exactly what
// each counts. Each message counts once, so the states add up to
// mq_queue_total_messages when only this library writes the queue; a
// Carmine worker leaves expired locks and backoffs, and done messages,
// that count until collected. Handled messages are deleted at once, so
// done holds only messages in a dedupe window (SucceedWithBackoff) or
// left by a Carmine worker. A message that failed for good leaves the
// queue for its dead letters, counted in mq_queue_dead_letters; alert on
// it rising.
//
// The history gauges come from the history the workers keep in Redis
// (mq.Inspector.History, docs/protocol.md §17), by the Redis server's
// minutes, the running one left out: processed counts the handlings
// recorded (succeeded, retried, failed or dead), failed those of them not
// succeeded, dead the dead letters written (quarantines included). They
// count every process's workers of this library, whichever process
// scrapes, and survive restarts; a Carmine worker's handlings are not
// among them. Reading them costs a second round trip per queue.
//
// Listing the queues (QueueOptions.Queues nil) finds only queues with
// messages, so the collector goes on reading the queues it listed until
// one is read empty: a queue left with only dead letters stays exported
// (see QueueOptions.Queues).
//
// From [WorkerCollector], for this process's workers, by queue (the
// workers of one queue summed):
//
//	mq_worker_handling_seconds{queue,outcome}  histogram  handler time, by the outcome its answer asked for
//	mq_worker_queueing_seconds{queue}          histogram  first enqueue to first handling (Redis's clock, to the ms)
//	mq_worker_handled_total{queue,outcome}     counter  handlings by recorded outcome
//	mq_worker_released_total{queue}            counter  prefetched messages given back unhandled
//	mq_worker_backoffs_set_total{queue}        counter  outcomes that set a backoff
//	mq_worker_locks_renewed_total{queue}       counter  lock renewals (on unless WorkerConfig.NoLockRenewal)
//	mq_worker_poll_errors_total{queue}         counter  failed polls
//	mq_worker_burst_polls_total{queue}         counter  polls of the second poll in flight
//	mq_worker_end_of_queue_sleeps_total{queue} counter  sleeps at the end of the queue
//	mq_worker_poll_skips_total{queue,reason}   counter  poll steps that handed nothing out, by reason
//	mq_worker_running{queue}                   gauge  workers added that are running
//
// The outcome label is an mq.Outcome: succeeded, retried, failed, dead or
// abandoned on the histogram (what the handler answered, observed as it
// returns) and on the counter, which counts outcomes once Redis recorded
// them and adds lock_lost: an answer fenced off because the message's lock
// was lost meanwhile. failed is a failure the retry policy queued again
// (WorkerConfig.MaxAttempts, RetryBackoff); dead is a failure for good, on
// the last attempt or marked with mq.Final, which made the message a dead
// letter. The skip reasons are mq.SkipCounts' fields in snake case
// (did_trim, unexpected, locked, queued_with_backoff, done_with_backoff,
// did_requeue, did_gc, quarantined, indexed, other); quarantined is a message
// handed out WorkerConfig.QuarantineAfter times without an outcome, made
// a dead letter instead of handed out again.
//
// The counters are Worker.Stats' and go back to 0 with Worker.ResetStats,
// which Prometheus reads as a counter reset. A worker removed from the
// collector keeps its counts, as of its removal, in its queue's sums.
//
// To tell several Redis deployments (or collectors) apart in one registry,
// wrap the registerer with labels: prometheus.WrapRegistererWith.
package mqprom

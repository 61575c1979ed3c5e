package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"
)

// HelperTest is the test a worker process runs: the test binary,
// re-executed with -test.run=^TestHelperFaultWorker$ and the settings in
// its environment, calls [WorkerMain] from it.
const HelperTest = "TestHelperFaultWorker"

// The environment of a worker process.
const (
	envWorker      = "MQ_FAULT_WORKER" // "1" in a worker process
	envRedis       = "MQ_FAULT_REDIS"
	envQueue       = "MQ_FAULT_QUEUE"
	envHistory     = "MQ_FAULT_HISTORY"
	envLockTime    = "MQ_FAULT_LOCK_TIME"
	envRenew       = "MQ_FAULT_RENEW_LOCKS"
	envThreads     = "MQ_FAULT_HANDLER_THREADS"
	envHandleFor   = "MQ_FAULT_HANDLE_FOR"
	envReadTimeout = "MQ_FAULT_READ_TIMEOUT"
	envStopTimeout = "MQ_FAULT_STOP_TIMEOUT"
	envIdleSleep   = "MQ_FAULT_IDLE_SLEEP"
	envPoison      = "MQ_FAULT_POISON"
	envQuarantine  = "MQ_FAULT_QUARANTINE_AFTER"
	envResults     = "MQ_FAULT_RESULTS"
	envPipeline    = "MQ_FAULT_PIPELINE"
	envExtra       = "MQ_FAULT_EXTRA_QUEUES"
	envAlso        = "MQ_FAULT_ALSO_QUEUES"
)

// PoisonExit is the exit code of a worker process whose handler met a
// poison message (WorkerSpec.PoisonPrefix).
const PoisonExit = 7

// WorkerSpec configures a worker process.
type WorkerSpec struct {
	// Redis is the address the worker's go-redis client dials: Redis's
	// own, or a [Proxy]'s.
	Redis string
	// Queue is the queue the worker handles.
	Queue string
	// History is the path of the process's history file.
	History string
	// LockTime, RenewLocks and HandlerThreads are the worker's
	// mq.WorkerConfig fields of those names.
	LockTime       time.Duration
	RenewLocks     bool
	HandlerThreads int
	// HandleFor is how long each handling takes: the handler sleeps that
	// long, whatever its context says, then returns nil.
	HandleFor time.Duration
	// ReadTimeout is the go-redis client's ReadTimeout; 0 keeps go-redis's
	// default (3 s).
	ReadTimeout time.Duration
	// StopTimeout bounds the Stop that a SIGTERM starts. Default: 10 s.
	StopTimeout time.Duration
	// IdleSleep is the worker's end-of-queue sleep (a mq.Constant), short
	// so that messages whose lock expired are seen again soon rather than
	// after the default's seconds. Default: 50 ms.
	IdleSleep time.Duration
	// PoisonPrefix, when set, makes the handler of a message whose id
	// starts with it end the whole process at once (exit code
	// PoisonExit), after writing its HandleStart event.
	PoisonPrefix string
	// QuarantineAfter is the worker's mq.WorkerConfig.QuarantineAfter;
	// 0 never quarantines (the scenarios kill workers on purpose, again
	// and again: a message taken by several of them in turn is not
	// poison there).
	QuarantineAfter int
	// Results makes the handler give a result with each success
	// (mq.Message.SetResult): "<message id>/<pid>/<handling number>", so
	// that a reader can tell which handling's result was kept.
	Results bool
	// Pipeline, when set, names the queues after Queue in a pipeline of
	// hand-offs (docs/protocol.md §22): the process runs a worker on each,
	// and the handler of each but the last hands its message's id off to
	// the next queue (mq.Then); the handlings of those queues write their
	// queue, the id that handed them off (Parent) and whether they hand off
	// in turn to their HandleStart events.
	Pipeline []string
	// Extra names more queues the process handles, whose messages are
	// enqueued by the library itself (a batch's completion): their
	// handlings write their queue, their content as Parent, and a batch
	// completion's counts as Note.
	Extra []string
	// AlsoQueues, when set, makes the worker a multi-queue worker
	// (mq.MultiWorker) over Queue and these, weighted 1 each, sharing its
	// HandlerThreads.
	AlsoQueues []string
}

func (s WorkerSpec) env() []string {
	return []string{
		envWorker + "=1",
		envRedis + "=" + s.Redis,
		envQueue + "=" + s.Queue,
		envHistory + "=" + s.History,
		envLockTime + "=" + s.LockTime.String(),
		envRenew + "=" + strconv.FormatBool(s.RenewLocks),
		envThreads + "=" + strconv.Itoa(s.HandlerThreads),
		envHandleFor + "=" + s.HandleFor.String(),
		envReadTimeout + "=" + s.ReadTimeout.String(),
		envStopTimeout + "=" + s.StopTimeout.String(),
		envIdleSleep + "=" + s.IdleSleep.String(),
		envPoison + "=" + s.PoisonPrefix,
		envQuarantine + "=" + strconv.Itoa(s.QuarantineAfter),
		envResults + "=" + strconv.FormatBool(s.Results),
		envPipeline + "=" + strings.Join(s.Pipeline, ","),
		envExtra + "=" + strings.Join(s.Extra, ","),
		envAlso + "=" + strings.Join(s.AlsoQueues, ","),
	}
}

// specFromEnv reads a worker process's settings.
func specFromEnv() (WorkerSpec, error) {
	var s WorkerSpec
	var errs []error
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(os.Getenv(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		return d
	}
	s.Redis, s.Queue, s.History = os.Getenv(envRedis), os.Getenv(envQueue), os.Getenv(envHistory)
	s.LockTime, s.HandleFor = dur(envLockTime), dur(envHandleFor)
	s.ReadTimeout, s.StopTimeout, s.IdleSleep = dur(envReadTimeout), dur(envStopTimeout), dur(envIdleSleep)
	s.RenewLocks, _ = strconv.ParseBool(os.Getenv(envRenew))
	s.HandlerThreads, _ = strconv.Atoi(os.Getenv(envThreads))
	s.PoisonPrefix = os.Getenv(envPoison)
	s.QuarantineAfter, _ = strconv.Atoi(os.Getenv(envQuarantine))
	s.Results, _ = strconv.ParseBool(os.Getenv(envResults))
	if p := os.Getenv(envPipeline); p != "" {
		s.Pipeline = strings.Split(p, ",")
	}
	if x := os.Getenv(envExtra); x != "" {
		s.Extra = strings.Split(x, ",")
	}
	if also := os.Getenv(envAlso); also != "" {
		s.AlsoQueues = strings.Split(also, ",")
	}
	if len(errs) > 0 {
		return s, errs[0]
	}
	return s, nil
}

// IsWorkerProcess tells whether this process was started as a worker
// process by [StartWorker].
func IsWorkerProcess() bool { return os.Getenv(envWorker) == "1" }

// WorkerMain is the body of a worker process. It runs an mq worker whose
// handler writes HandleStart and HandleEnd events to the process's
// history, until SIGTERM or SIGINT; it then stops the worker (with
// StopTimeout as the deadline), writes a WorkerExit event with the
// worker's counters, and returns the exit code. SIGKILL ends it anywhere.
func WorkerMain() int {
	spec, err := specFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault worker:", err)
		return 2
	}
	spec.StopTimeout = cmpOr(spec.StopTimeout, 10*time.Second)
	spec.IdleSleep = cmpOr(spec.IdleSleep, 50*time.Millisecond)

	hist, err := OpenHistory(spec.History)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault worker:", err)
		return 2
	}
	defer hist.Close()
	// A lost event would make the checker's numbers wrong: better to die
	// loudly, which the test sees as an unexpected exit.
	write := func(e Event) {
		if err := hist.Write(e); err != nil {
			fmt.Fprintln(os.Stderr, "fault worker: writing history:", err)
			os.Exit(3)
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tellReady()

	rdb := redis.NewClient(&redis.Options{Addr: spec.Redis, ReadTimeout: spec.ReadTimeout})
	defer rdb.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := mq.New(rdb, &mq.Config{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault worker:", err)
		return 2
	}
	stallAt := max(spec.LockTime/4, 50*time.Millisecond)
	var handlings atomic.Int64
	queues := append([]string{spec.Queue}, spec.Pipeline...)
	handlerOf := func(stage int) mq.Handler {
		return mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
			n := handlings.Add(1)
			start := hist.Now()
			ev := Event{Kind: HandleStart, ID: m.ID, Handling: n, Attempt: m.Attempt,
				LockMS: m.LockTime.Milliseconds(), Renew: spec.RenewLocks, AgeMS: m.Age.Milliseconds()}
			if stage >= len(queues) { // an extra queue
				ev.Queue = m.Queue
				if err := m.Decode(&ev.Parent); err != nil {
					return err
				}
				if bc, ok := m.BatchCounts(); ok {
					ev.Note = fmt.Sprintf("succeeded %d dead %d", bc.Succeeded, bc.Dead)
				}
			} else if len(queues) > 1 {
				ev.HandsOff = stage < len(queues)-1
				if stage > 0 {
					ev.Queue = queues[stage]
					if err := m.Decode(&ev.Parent); err != nil {
						return err
					}
				}
			}
			write(ev)
			if spec.PoisonPrefix != "" && strings.HasPrefix(m.ID, spec.PoisonPrefix) {
				os.Exit(PoisonExit) // the process dies with every message it holds
			}
			t := time.NewTimer(spec.HandleFor)
			<-t.C
			// A handling that overran its time by much was stalled, whether the
			// whole process was or only this goroutine (a slow write, say).
			if over := hist.Now().Sub(start) - spec.HandleFor; over >= stallAt {
				write(Event{Kind: ProcessStalled, StallMS: over.Milliseconds(), Note: "handler overran"})
			}
			end := Event{Kind: HandleEnd, ID: m.ID, Handling: n, Cancelled: ctx.Err() != nil}
			if end.Cancelled {
				end.Cause = context.Cause(ctx).Error()
			}
			write(end)
			if stage < len(queues)-1 {
				return mq.Then(mq.FollowUp{Queue: queues[stage+1], Message: m.ID})
			}
			if spec.Results {
				return m.SetResult(fmt.Sprintf("%s/%d/%d", m.ID, os.Getpid(), n))
			}
			return nil
		})
	}
	write(Event{Kind: WorkerStart, Note: spec.Queue})
	var ws []faultWorker
	for i, q := range append(slices.Clip(queues), spec.Extra...) {
		cfg := &mq.WorkerConfig{
			Handler:           handlerOf(i),
			LockTime:          spec.LockTime,
			NoLockRenewal:     !spec.RenewLocks,
			QuarantineAfter:   quarantineAfter(spec.QuarantineAfter),
			HandlerThreads:    spec.HandlerThreads,
			EndOfQueueBackoff: mq.Constant(spec.IdleSleep),
		}
		var w faultWorker
		var err error
		if i == 0 { // the main queue, with AlsoQueues a multi-queue worker
			w, err = startWorker(client, spec, cfg)
		} else {
			var one *mq.Worker
			one, err = client.StartWorker(context.Background(), q, cfg)
			w = oneQueue{one}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fault worker:", err)
			return 2
		}
		ws = append(ws, w)
	}
	stopFences := watchFences(ws, write)
	stopWatch := watchStalls(hist, stallAt, write)
	<-stop
	stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), spec.StopTimeout)
	var stopErrs []error
	for _, w := range ws {
		stopErrs = append(stopErrs, w.Stop(ctx))
	}
	stopFences() // (after the stops: the last outcomes are settled)
	var counts mq.Counts
	for i, w := range ws {
		c := w.Counts()
		if i == 0 { // the main queue's, every count
			counts = c
			continue
		}
		counts.LockLost += c.LockLost
		counts.Abandoned += c.Abandoned
		counts.Succeeded += c.Succeeded
	}
	cancel()
	exit := Event{Kind: WorkerExit, Counts: &counts}
	if err := errors.Join(stopErrs...); err != nil {
		exit.Err = err.Error()
	}
	write(exit)
	return 0
}

// faultWorker is a worker process's worker: an mq.Worker, or an
// mq.MultiWorker (WorkerSpec.AlsoQueues).
type faultWorker interface {
	Stop(ctx context.Context) error
	Counts() mq.Counts
	// Workers answers the mq workers it runs, one a queue.
	Workers() []*mq.Worker
}

type oneQueue struct{ *mq.Worker }

func (w oneQueue) Counts() mq.Counts { return w.Stats().Counts }

func (w oneQueue) Workers() []*mq.Worker { return []*mq.Worker{w.Worker} }

type multiQueue struct{ *mq.MultiWorker }

// watchFences writes a HandleFenced event for each handling of the
// workers ws whose outcome was fenced off (mq.OutcomeLockLost: its lock
// had run out by the time the outcome reached Redis), as the worker tells
// its subscribers, once it knows. It returns a function that ends the
// watch once every event told so far is written.
func watchFences(ws []faultWorker, write func(Event)) (stop func()) {
	var unsubs []func()
	var wg sync.WaitGroup
	for _, fw := range ws {
		for _, w := range fw.Workers() {
			ch, unsub := w.Subscribe(mq.EventHandled)
			unsubs = append(unsubs, unsub)
			wg.Go(func() {
				for e := range ch {
					if e.Outcome == mq.OutcomeLockLost {
						write(Event{Kind: HandleFenced, ID: e.ID, Attempt: e.Attempt})
					}
				}
			})
		}
	}
	return func() {
		for _, unsub := range unsubs {
			unsub()
		}
		wg.Wait()
	}
}

// Counts adds up the queues' counters that the checker reads.
func (w multiQueue) Counts() mq.Counts {
	var n mq.Counts
	for _, in := range w.Info() {
		c := in.Stats.Counts
		n.Succeeded += c.Succeeded
		n.Retried += c.Retried
		n.Failed += c.Failed
		n.Dead += c.Dead
		n.LockLost += c.LockLost
		n.Abandoned += c.Abandoned
		n.Released += c.Released
		n.Cancelled += c.Cancelled
		n.Skips.Cancelled += c.Skips.Cancelled
	}
	return n
}

// startWorker starts the process's worker.
func startWorker(client *mq.Client, spec WorkerSpec, cfg *mq.WorkerConfig) (faultWorker, error) {
	if len(spec.AlsoQueues) == 0 {
		w, err := client.StartWorker(context.Background(), spec.Queue, cfg)
		return oneQueue{w}, err
	}
	order := mq.Weighted{{Queue: spec.Queue, Weight: 1}}
	for _, q := range spec.AlsoQueues {
		order = append(order, mq.QueueWeight{Queue: q, Weight: 1})
	}
	w, err := client.NewMultiWorker(order, cfg)
	if err != nil {
		return nil, err
	}
	return multiQueue{w}, w.Start(context.Background())
}

// stallTick is how often the stall watch looks at the clock.
const stallTick = 20 * time.Millisecond

// watchStalls writes a ProcessStalled event whenever the process was not
// scheduled for at least threshold: a tick of a 20 ms ticker that comes
// that late. A stall that long may let a lock expire (renewal and outcomes
// wait too), so the checker takes it as an explanation, as it takes a
// Redis pause. It returns a function that stops the watch.
func watchStalls(hist *History, threshold time.Duration, write func(Event)) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(stallTick)
		defer t.Stop()
		last := hist.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			now := hist.Now()
			if gap := now.Sub(last); gap >= threshold {
				write(Event{Kind: ProcessStalled, Time: now, StallMS: gap.Milliseconds()})
			}
			last = now
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// readyFD is the descriptor of the pipe on which a worker process tells
// [StartWorker] that it handles SIGTERM: the first of cmd.ExtraFiles.
// envReady, set to it, tells the process that the pipe is there.
const (
	readyFD  = 3
	envReady = "MQ_FAULT_READY_FD"
)

// tellReady tells the process that started this worker process that its
// SIGTERM handler is in place, by closing the pipe's write end (the only
// copy left once the parent closed its own).
func tellReady() {
	if os.Getenv(envReady) != strconv.Itoa(readyFD) {
		return
	}
	if f := os.NewFile(readyFD, "ready"); f != nil {
		_ = f.Close()
	}
}

// quarantineAfter is WorkerSpec.QuarantineAfter as the worker's setting.
func quarantineAfter(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func cmpOr(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// WorkerProcess is a worker process started by [StartWorker]. Its methods
// are safe for concurrent use.
type WorkerProcess struct {
	// PID is the process id.
	PID int
	// Log is the path of the file that holds the process's stdout and
	// stderr.
	Log string

	cmd    *exec.Cmd
	poison bool          // its spec has a PoisonPrefix: exiting with PoisonExit is expected
	ready  chan struct{} // closed once the process handles SIGTERM, or has exited
	done   chan struct{} // closed once the process is reaped
	err    error         // cmd.Wait's answer, once done is closed
	hist   *History      // the test's history, for the kill event
	mu     sync.Mutex
}

// StartWorker re-executes the test binary as a worker process (see
// [WorkerMain]) configured by spec; spec.History must be set. Faults the
// test causes to it are written to hist. The process is SIGKILLed when the
// test ends if it still runs, and also, on Linux, if the test process dies.
func StartWorker(tb testing.TB, hist *History, spec WorkerSpec) *WorkerProcess {
	tb.Helper()
	logPath := spec.History + ".log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatalf("fault: worker log: %v", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(os.Args[0], "-test.run=^"+HelperTest+"$")
	cmd.Env = append(os.Environ(), spec.env()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	// The child closes its end of this pipe once it handles SIGTERM (a
	// SIGTERM before that, while the Go runtime and the test framework
	// start, would kill it with the signal's default action); the read
	// end then sees EOF, as it does when the child exits.
	readyR, readyW, err := os.Pipe()
	if err != nil {
		tb.Fatalf("fault: worker ready pipe: %v", err)
	}
	cmd.ExtraFiles = []*os.File{readyW} // readyFD in the child
	cmd.Env = append(cmd.Env, envReady+"="+strconv.Itoa(readyFD))
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		readyR.Close()
		tb.Fatalf("fault: starting worker process: %v", err)
	}
	p := &WorkerProcess{PID: cmd.Process.Pid, Log: logPath, cmd: cmd, poison: spec.PoisonPrefix != "",
		ready: make(chan struct{}), done: make(chan struct{}), hist: hist}
	go func() {
		defer close(p.ready)
		defer readyR.Close()
		_, _ = readyR.Read(make([]byte, 1)) // EOF
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Kill sends SIGKILL, waits until the process is reaped, then writes a
// ProcessKilled event. Killing a process that has exited writes nothing.
func (p *WorkerProcess) Kill(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	if err := p.hist.Write(Event{Kind: ProcessKilled, Target: p.PID}); err != nil {
		tb.Fatalf("fault: writing history: %v", err)
	}
}

// Stop sends SIGTERM and waits for the process to stop its worker and
// exit, for at most timeout; then it kills the process and fails the
// test. A process still starting is sent the signal once it handles it.
// A process that exits with an error fails the test too, with the tail of
// its log, unless it died of a poison message (WorkerSpec.PoisonPrefix):
// one may have been handed out just before the stop.
func (p *WorkerProcess) Stop(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	stopped := false
	select {
	case <-p.ready:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			stopped = true
		case <-t.C:
		}
	case <-t.C:
	}
	if !stopped {
		_ = p.cmd.Process.Kill()
		<-p.done
		tb.Errorf("fault: worker process %d did not stop within %v; killed. Its log:\n%s", p.PID, timeout, tail(p.Log))
		return
	}
	if p.poisoned() {
		return // died of a poison message before the signal, as its scenario lets it
	}
	if p.err != nil {
		tb.Errorf("fault: worker process %d: %v. Its log:\n%s", p.PID, p.err, tail(p.Log))
	}
}

// poisoned tells whether the process, reaped, exited with PoisonExit, with
// a PoisonPrefix in its spec.
func (p *WorkerProcess) poisoned() bool {
	var exit *exec.ExitError
	return p.poison && errors.As(p.err, &exit) && exit.ExitCode() == PoisonExit
}

// Exited tells whether the process has ended.
func (p *WorkerProcess) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the end of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

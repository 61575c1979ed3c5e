package fault

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocarmine/mq"
	"github.com/redis/go-redis/v9"

	"github.com/gocarmine/mq/internal/redistest"
)

// scheduleFor sets how long TestScenarioScheduleTicksOnce runs its
// schedule: by default 15 s, 60 s in the long mode (MQ_FAULT_LONG=1).
var scheduleFor = flag.Duration("schedule-for", 0, "how long TestScenarioScheduleTicksOnce runs (default 15s, 60s with MQ_FAULT_LONG=1)")

// The environment of a scheduler process.
const (
	envScheduler      = "MQ_FAULT_SCHEDULER" // "1" in a scheduler process
	helperSchedulerRE = "^TestHelperFaultScheduler$"
)

// TestHelperFaultScheduler is the body of a scheduler process: an
// mq.Scheduler of the queue on MQ_FAULT_REDIS, and nothing else, until
// SIGTERM; it then prints how many ticks it enqueued ("enqueued N"). Run
// directly, it skips.
func TestHelperFaultScheduler(t *testing.T) {
	if os.Getenv(envScheduler) != "1" {
		t.Skip("run as a scheduler process by TestScenarioScheduleTicksOnce")
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envRedis)})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := mq.New(rdb, &mq.Config{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault scheduler:", err)
		os.Exit(2)
	}
	s, err := c.NewScheduler(os.Getenv(envQueue), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault scheduler:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	_ = s.Run(ctx)
	stop()
	fmt.Printf("enqueued %d\n", s.Stats().Enqueued)
	_ = rdb.Close()
	os.Exit(0)
}

// schedulerProcess is a scheduler process and its output.
type schedulerProcess struct {
	cmd  *exec.Cmd
	out  string
	done chan struct{}
}

func startScheduler(t *testing.T, dir, addr string, n int) *schedulerProcess {
	out := filepath.Join(dir, "scheduler-"+strconv.Itoa(n)+".log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run="+helperSchedulerRE)
	cmd.Env = append(os.Environ(), envScheduler+"=1", envRedis+"="+addr, envQueue+"="+queue)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &schedulerProcess{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// enqueued stops the process with SIGTERM and answers the ticks it says
// it enqueued.
func (p *schedulerProcess) enqueued(t *testing.T) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("scheduler process %d did not stop", p.cmd.Process.Pid)
	}
	f, err := os.Open(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "enqueued "); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("scheduler process %d printed no count; its output:\n%s", p.cmd.Process.Pid, tail(p.out))
	return 0
}

// TestScenarioScheduleTicksOnce: five scheduler processes run a schedule
// of every second, with no leader; one is SIGKILLed a third of the way
// in, another frozen (SIGSTOP) from 40% to 70% of the run, so that its
// calls come late. A worker in the test process handles the ticks. Every
// tick from the first to the last is handled exactly once: none missed,
// none twice (a tick enqueued again after its message was handled and
// collected would be handled twice).
func TestScenarioScheduleTicksOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 15 s")
	}
	run := cmpOr(*scheduleFor, scale(15*time.Second, 60*time.Second))
	dir := runDir(t)
	r := redistest.Start(t)
	rdb := r.Client(t)
	c, err := mq.New(rdb, &mq.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Inspector().SetSchedule(ctx, queue, mq.Schedule{Name: "s", Every: time.Second, Message: "tick"}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	handled := map[int64]int{}
	w, err := c.StartWorker(ctx, queue, &mq.WorkerConfig{NoScheduler: true, Handler: mq.HandlerFunc(func(ctx context.Context, m *mq.Message) error {
		ms, err := strconv.ParseInt(strings.TrimPrefix(m.ID, "sched:s:"), 10, 64)
		if err != nil {
			return mq.Final(fmt.Errorf("a message not of the schedule: %q", m.ID))
		}
		mu.Lock()
		handled[ms]++
		mu.Unlock()
		return nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	var procs []*schedulerProcess
	for i := range 5 {
		procs = append(procs, startScheduler(t, dir, r.Addr, i))
	}
	start := time.Now()
	at := func(frac float64) { time.Sleep(time.Until(start.Add(time.Duration(frac * float64(run))))) }
	at(1.0 / 3)
	killed := procs[0]
	_ = killed.cmd.Process.Kill()
	<-killed.done
	t.Logf("scheduler %d SIGKILLed at %v", killed.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	at(0.4)
	frozen := procs[1]
	_ = frozen.cmd.Process.Signal(syscall.SIGSTOP)
	t.Logf("scheduler %d frozen at %v", frozen.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	at(0.7)
	_ = frozen.cmd.Process.Signal(syscall.SIGCONT)
	t.Logf("scheduler %d thawed at %v", frozen.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	at(1)
	if err := c.Inspector().DeleteSchedule(ctx, queue, "s"); err != nil {
		t.Fatal(err)
	}
	enqueued := 0
	for _, p := range procs[1:] {
		enqueued += p.enqueued(t)
	}
	// Every tick enqueued is handled; then the queue is empty.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := c.Inspector().QueueCounts(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		if n.Total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain: %+v", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	ticks := slices.Sorted(func(yield func(int64) bool) {
		for ms := range handled {
			if !yield(ms) {
				return
			}
		}
	})
	if len(ticks) == 0 {
		t.Fatal("no tick handled")
	}
	var twice, missed []int64
	for _, ms := range ticks {
		if handled[ms] > 1 {
			twice = append(twice, ms)
		}
	}
	for ms := ticks[0]; ms <= ticks[len(ticks)-1]; ms += 1000 {
		if handled[ms] == 0 {
			missed = append(missed, ms)
		}
	}
	t.Logf("%d ticks in %v, from %v to %v; %d enqueued by the 4 schedulers still running at the end (the killed one enqueued the rest)",
		len(ticks), run, time.UnixMilli(ticks[0]).UTC().Format(time.TimeOnly), time.UnixMilli(ticks[len(ticks)-1]).UTC().Format(time.TimeOnly), enqueued)
	if len(twice) > 0 || len(missed) > 0 {
		t.Errorf("ticks handled twice: %v; ticks missed: %v", twice, missed)
	}
	if want := int(run/time.Second) - 2; len(ticks) < want {
		t.Errorf("%d ticks in %v, want at least %d", len(ticks), run, want)
	}
	if enqueued > len(ticks) {
		t.Errorf("the schedulers say they enqueued %d ticks, %d were handled", enqueued, len(ticks))
	}
}

package fault

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gocarmine/mq"
)

// Kind names what an [Event] records.
type Kind string

// The kinds of events.
const (
	// EnqueueAttempt: the producer is about to call Enqueue for ID.
	EnqueueAttempt Kind = "enqueue-attempt"
	// EnqueueAck: the call returned no error; Result is the queue's
	// answer ("added", "updated", or a refusal such as "already-queued").
	EnqueueAck Kind = "enqueue-ack"
	// EnqueueFail: the call returned Err.
	EnqueueFail Kind = "enqueue-fail"

	// HandleStart: a handler began on ID (attempt Attempt, lock time
	// LockMS, renewal Renew), handling number Handling of process PID;
	// AgeMS is Message.Age, the time from the id's first enqueue to the
	// poll that took the lock, by Redis's clock.
	HandleStart Kind = "handle-start"
	// HandleEnd: the handler of handling Handling returned: Err is what it
	// returned ("" for nil); Cancelled tells whether its context had been
	// cancelled by then, and Cause why (context.Cause: mq.ErrCancelled,
	// mq.ErrLockExpired, ...).
	HandleEnd Kind = "handle-end"

	// HandleFenced: the outcome of the handling of ID at attempt Attempt
	// in process PID was fenced off: its lock had run out, and the message
	// may have been handed out again, by the time the outcome's call ran
	// (the worker counts it in LockLost). Written once the worker knows,
	// after that call's reply.
	HandleFenced Kind = "handle-fenced"

	// WorkerStart: a worker process is up (its own first event).
	WorkerStart Kind = "worker-start"
	// WorkerExit: a worker process stopped on SIGTERM; Counts holds its
	// worker's counters (LockLost and the rest), Err the Stop
	// error if any.
	WorkerExit Kind = "worker-exit"

	// ProcessStalled: the worker process itself was not scheduled for
	// StallMS milliseconds, up to the event's time, as its stall watch
	// saw (a busy machine, a long GC pause); only stalls long enough to
	// matter to a lock are written (see WorkerMain).
	ProcessStalled Kind = "process-stalled"

	// ProcessKilled: the test sent SIGKILL to worker process Target and
	// reaped it. Written after the process is gone.
	ProcessKilled Kind = "process-killed"
	// RedisKilled: Redis was SIGKILLed (written once it is gone).
	RedisKilled Kind = "redis-killed"
	// RedisRestarted: Redis runs again on its data (written once it
	// answers).
	RedisRestarted Kind = "redis-restarted"
	// RedisPaused: Redis was frozen with SIGSTOP (written once stopped).
	RedisPaused Kind = "redis-paused"
	// RedisResumed: Redis runs again after a pause.
	RedisResumed Kind = "redis-resumed"
	// ProxyDrop: the proxy dropped the reply to Note (a command name).
	ProxyDrop Kind = "proxy-drop"
	// ProxyDelay: the proxy delayed the reply to Note.
	ProxyDelay Kind = "proxy-delay"
	// OOMBegin and OOMEnd bracket a window in which Redis is over its
	// maxmemory under noeviction.
	OOMBegin Kind = "oom-begin"
	OOMEnd   Kind = "oom-end"
	// ScriptFlush: SCRIPT FLUSH was run.
	ScriptFlush Kind = "script-flush"
)

// Event is one line of a history. Only the fields that matter to its Kind
// are set.
type Event struct {
	// Time is when the event happened: the process's wall clock at its
	// start plus the monotonic time since, so that a wall clock step
	// during a run does not reorder a process's events.
	Time time.Time `json:"t"`
	// PID is the process that wrote the event.
	PID int `json:"pid"`
	// Seq numbers a process's events from 1, in the order written.
	Seq  int64 `json:"seq"`
	Kind Kind  `json:"kind"`

	ID        string     `json:"id,omitempty"`
	Handling  int64      `json:"h,omitempty"`
	Attempt   int        `json:"attempt,omitempty"`
	LockMS    int64      `json:"lock_ms,omitempty"`
	AgeMS     int64      `json:"age_ms,omitempty"`
	Renew     bool       `json:"renew,omitempty"`
	Cancelled bool       `json:"cancelled,omitempty"`
	Cause     string     `json:"cause,omitempty"`
	Result    string     `json:"result,omitempty"`
	Err       string     `json:"err,omitempty"`
	Target    int        `json:"target,omitempty"`
	Note      string     `json:"note,omitempty"`
	StallMS   int64      `json:"stall_ms,omitempty"`
	Counts    *mq.Counts `json:"counts,omitempty"`
	// Queue, Parent and HandsOff are set on the HandleStart events of a
	// pipeline of hand-offs (WorkerSpec.Pipeline): the queue of a handling
	// after the first step, the id of the message that handed it off, and
	// whether this step hands off in turn.
	Queue    string `json:"queue,omitempty"`
	Parent   string `json:"parent,omitempty"`
	HandsOff bool   `json:"hands_off,omitempty"`
}

// LockTime is the event's lock time.
func (e Event) LockTime() time.Duration { return time.Duration(e.LockMS) * time.Millisecond }

// History appends events to one JSON-lines file. Each event is one line
// written with one write call on a file opened with O_APPEND, so a process
// killed at any moment leaves whole lines, or at worst a torn last line,
// which [ReadHistories] skips. Data written is in the kernel's hands at
// once: a SIGKILL loses nothing written (a machine crash might; there is
// no fsync). It is safe for concurrent use.
type History struct {
	mu   sync.Mutex
	f    *os.File
	pid  int
	seq  int64
	wall time.Time // wall clock at open, without its monotonic reading
	mono time.Time // the same instant, with it
}

// OpenHistory opens (creating if need be) the history file at path for
// appending.
func OpenHistory(path string) (*History, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &History{f: f, pid: os.Getpid(), wall: now.Round(0), mono: now}, nil
}

// Now is the history's clock: the wall time at open plus the monotonic
// time elapsed since.
func (h *History) Now() time.Time { return h.wall.Add(time.Since(h.mono)) }

// Write appends e, filling in Time (unless set), PID and Seq.
func (h *History) Write(e Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return os.ErrClosed
	}
	h.seq++
	e.PID, e.Seq = h.pid, h.seq
	if e.Time.IsZero() {
		e.Time = h.Now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = h.f.Write(append(line, '\n'))
	return err
}

// Close closes the file. Writes after Close fail.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}

// historyExt is the extension of history files in a run's directory.
const historyExt = ".jsonl"

// HistoryPath is the path of a history file named name in dir.
func HistoryPath(dir, name string) string { return filepath.Join(dir, name+historyExt) }

// ReadHistories reads every history file in dir and returns all their
// events sorted by time (then process and sequence number). A torn last
// line, as a process killed in the middle of a write could leave, is
// skipped; a bad line anywhere else is an error.
func ReadHistories(dir string) ([]Event, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+historyExt))
	if err != nil {
		return nil, err
	}
	var all []Event
	for _, p := range paths {
		evs, err := readHistory(p)
		if err != nil {
			return nil, err
		}
		all = append(all, evs...)
	}
	sortEvents(all)
	return all, nil
}

// sortEvents sorts events by time, then process, then sequence number.
func sortEvents(evs []Event) {
	slices.SortStableFunc(evs, func(a, b Event) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Seq, b.Seq))
	})
}

// readHistory reads one history file.
func readHistory(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			last := !bytes.HasSuffix(b, []byte("\n")) && bytes.HasSuffix(b, sc.Bytes())
			if last {
				break // torn by a kill mid-write
			}
			return nil, fmt.Errorf("fault: %s line %d: %w", path, n, err)
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}

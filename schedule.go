package mq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/protocol"
	"github.com/robfig/cron/v3"
)

// A queue's schedules (docs/protocol.md §15) enqueue a message at each
// tick of a cron expression or a fixed interval. They live in Redis, in
// the queue's keys, so that every process's schedulers (a [Scheduler], or
// a [Worker], which runs one for its queue) share them, and each tick is
// enqueued exactly once however many of them run, with no leader.

// ErrUnknownSchedule reports a schedule name the queue does not have.
var ErrUnknownSchedule = errors.New("mq: no such schedule")

// MaxScheduleNameLength bounds a schedule's name, in bytes.
const MaxScheduleNameLength = 200

// Schedule describes a periodic message: set it with
// [Inspector.SetSchedule]. Exactly one of Cron and Every is set.
type Schedule struct {
	// Name identifies the schedule within its queue: 1 to 200 bytes, no
	// control characters.
	Name string

	// Cron is a cron expression: five fields (minute, hour, day of month,
	// month, day of week), or six with seconds first, or a descriptor such
	// as "@hourly" or "@every 90s", as github.com/robfig/cron/v3 parses
	// them. Its times are read in Zone.
	Cron string

	// Every is a fixed interval, at least a second and a whole number of
	// milliseconds: the ticks are the multiples of Every since the Unix
	// epoch (Every of an hour ticks on the hour, UTC).
	Every time.Duration

	// Zone is the IANA time zone (such as "Europe/Paris") the cron
	// expression's times are read in. Default: "UTC".
	Zone string

	// Message is the message each tick enqueues, encoded with the client's
	// codec when the schedule is set (a Raw is stored as it is).
	Message any

	// Metadata and LockTime are the tick messages' options, as in
	// EnqueueOptions. Default: none.
	Metadata map[string]string
	LockTime time.Duration

	// Paused sets the schedule paused: it has no ticks until
	// ResumeSchedule.
	Paused bool
}

// ScheduleInfo is a schedule as the queue holds it.
type ScheduleInfo struct {
	Name     string            `json:"name"`
	Cron     string            `json:"cron,omitempty"`
	Every    time.Duration     `json:"every,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	LockTime time.Duration     `json:"lock_time,omitempty"`
	// Message is the encoded message each tick enqueues.
	Message Raw `json:"message"`
	// Paused tells whether the schedule is paused.
	Paused bool `json:"paused"`
	// Next is the time of its next tick, by the server's clock; zero when
	// paused.
	Next time.Time `json:"next,omitzero"`
}

// scheduleSpec is a schedule as stored in the queue's schedules hash:
// JSON, so that a service in another language may read it.
type scheduleSpec struct {
	Cron    string            `json:"cron,omitempty"`
	EveryMS int64             `json:"every_ms,omitempty"`
	Zone    string            `json:"zone,omitempty"`
	Content []byte            `json:"content"`
	Meta    map[string]string `json:"meta,omitempty"`
	LockMS  int64             `json:"lock_ms,omitempty"`
	Paused  bool              `json:"paused,omitempty"`
}

// cronParser reads five fields, or six with seconds first, and
// descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ticker computes a spec's tick times.
type ticker struct {
	cron  cron.Schedule
	loc   *time.Location
	every int64 // ms
}

func (s *scheduleSpec) ticker() (ticker, error) {
	if s.Cron == "" {
		if s.EveryMS < 1000 {
			return ticker{}, fmt.Errorf("%w: schedule interval of %dms is under a second", ErrInvalidOption, s.EveryMS)
		}
		return ticker{every: s.EveryMS}, nil
	}
	if s.EveryMS != 0 {
		return ticker{}, fmt.Errorf("%w: a schedule has both Cron and Every", ErrInvalidOption)
	}
	if strings.Contains(s.Cron, "TZ=") {
		return ticker{}, fmt.Errorf("%w: cron %q names its zone: use Schedule.Zone", ErrInvalidOption, s.Cron)
	}
	zone := s.Zone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return ticker{}, fmt.Errorf("%w: schedule zone %q: %v", ErrInvalidOption, zone, err)
	}
	c, err := cronParser.Parse(s.Cron)
	if err != nil {
		return ticker{}, fmt.Errorf("%w: cron %q: %v", ErrInvalidOption, s.Cron, err)
	}
	return ticker{cron: c, loc: loc}, nil
}

// after answers the first tick strictly after t (Unix ms), or 0 when
// there is none (a cron expression that never matches again).
func (tk ticker) after(t int64) int64 {
	if tk.cron == nil {
		return (t/tk.every + 1) * tk.every
	}
	next := tk.cron.Next(time.UnixMilli(t).In(tk.loc))
	if next.IsZero() {
		return 0
	}
	return next.UnixMilli()
}

// tickID is the message id of the tick at ms of schedule name: derived
// from both, so that a tick is one message whoever enqueues it.
func tickID(name string, ms int64) string {
	return "sched:" + name + ":" + strconv.FormatInt(ms, 10)
}

func validateScheduleName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty schedule name", ErrInvalidOption)
	case len(name) > MaxScheduleNameLength:
		return fmt.Errorf("%w: schedule name of %d bytes, more than %d", ErrInvalidOption, len(name), MaxScheduleNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: schedule name %q holds a control character", ErrInvalidOption, name)
	}
	return nil
}

func (c *Client) scheduleKeys(q string) []string { return keys.Schedules(q, c.cfg.Cluster) }

// SetSchedule adds the schedule to queue, or replaces the one of the same
// name; its next tick is the first after now, by the server's clock. It
// answers whether the name was new. Bad input (an unparsable cron
// expression, an unknown zone, an interval under a second) is an error
// wrapping ErrInvalidOption, and nothing is written. Schedulers see the
// change at once in this process, and within 2 s elsewhere.
func (in *Inspector) SetSchedule(ctx context.Context, queue string, s Schedule) (bool, error) {
	if err := ValidateQueueName(queue); err != nil {
		return false, err
	}
	if err := validateScheduleName(s.Name); err != nil {
		return false, err
	}
	if s.Every%time.Millisecond != 0 || s.Every < 0 {
		return false, fmt.Errorf("%w: schedule interval %v", ErrInvalidOption, s.Every)
	}
	if s.LockTime < 0 {
		return false, fmt.Errorf("%w: schedule lock time %v", ErrInvalidOption, s.LockTime)
	}
	data, err := in.c.encode(s.Message)
	if err != nil {
		return false, err
	}
	if len(data) > in.c.cfg.MaxMessageSize {
		return false, fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrMessageTooLarge, len(data), in.c.cfg.MaxMessageSize)
	}
	if _, err := encodeMetadata(s.Metadata); err != nil {
		return false, err
	}
	spec := scheduleSpec{Cron: s.Cron, EveryMS: s.Every.Milliseconds(), Zone: s.Zone, Content: data,
		Meta: s.Metadata, LockMS: protocol.MS(s.LockTime), Paused: s.Paused}
	if s.Cron != "" && s.Zone == "" {
		spec.Zone = "UTC"
	}
	tk, err := spec.ticker()
	if err != nil {
		return false, err
	}
	enc, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	isNew, err := within(in.c, ctx, func(ctx context.Context) (bool, error) {
		var next int64
		if !spec.Paused {
			now, _, _, err := protocol.PeekSchedule(ctx, in.c.rdb, in.c.scheduleKeys(queue))
			if err != nil {
				return false, err
			}
			if next = tk.after(now); next == 0 {
				return false, fmt.Errorf("%w: cron %q has no tick after now", ErrInvalidOption, s.Cron)
			}
		}
		return protocol.SetSchedule(ctx, in.c.rdb, in.c.scheduleKeys(queue), s.Name, string(enc), next)
	})
	if err != nil {
		return false, fmt.Errorf("mq: set schedule %q of %q: %w", s.Name, queue, redisError(err))
	}
	in.c.schedulesChanged()
	// A schedule makes its queue exist (docs/protocol.md §16), like a
	// pause: after the schedule is written, so a failure here leaves a
	// schedule QueueNames still finds by its scan.
	if err := in.c.registerNow(ctx, queue); err != nil {
		return isNew, err
	}
	return isNew, nil
}

// Schedules returns the schedules of queue, by name.
func (in *Inspector) Schedules(ctx context.Context, queue string) ([]ScheduleInfo, error) {
	if err := ValidateQueueName(queue); err != nil {
		return nil, err
	}
	entries, err := within(in.c, ctx, func(ctx context.Context) ([]protocol.ScheduleEntry, error) {
		_, entries, err := protocol.ListSchedules(ctx, in.c.rdb, in.c.scheduleKeys(queue))
		return entries, err
	})
	if err != nil {
		return nil, fmt.Errorf("mq: schedules of %q: %w", queue, redisError(err))
	}
	out := make([]ScheduleInfo, 0, len(entries))
	for _, e := range entries {
		var spec scheduleSpec
		if err := json.Unmarshal([]byte(e.Spec), &spec); err != nil {
			return nil, fmt.Errorf("%w: schedule %q: %v", ErrUnexpectedReply, e.Name, err)
		}
		info := ScheduleInfo{Name: e.Name, Cron: spec.Cron, Every: time.Duration(spec.EveryMS) * time.Millisecond,
			Zone: spec.Zone, Metadata: spec.Meta, LockTime: time.Duration(spec.LockMS) * time.Millisecond,
			Message: Raw(spec.Content), Paused: spec.Paused}
		if e.Next > 0 {
			info.Next = time.UnixMilli(e.Next)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b ScheduleInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// PauseSchedule pauses a schedule of queue: no tick is enqueued until
// ResumeSchedule. It answers whether it was running, and an error
// wrapping ErrUnknownSchedule when queue has no schedule of that name.
func (in *Inspector) PauseSchedule(ctx context.Context, queue, name string) (bool, error) {
	return in.setSchedulePaused(ctx, queue, name, true)
}

// ResumeSchedule resumes a paused schedule of queue: its next tick is the
// first after now (the ticks of the pause are not caught up). It answers
// whether it was paused, and an error wrapping ErrUnknownSchedule when
// queue has no schedule of that name.
func (in *Inspector) ResumeSchedule(ctx context.Context, queue, name string) (bool, error) {
	return in.setSchedulePaused(ctx, queue, name, false)
}

func (in *Inspector) setSchedulePaused(ctx context.Context, queue, name string, pause bool) (bool, error) {
	if err := ValidateQueueName(queue); err != nil {
		return false, err
	}
	what := "resume"
	if pause {
		what = "pause"
	}
	changed, err := within(in.c, ctx, func(ctx context.Context) (bool, error) {
		sk := in.c.scheduleKeys(queue)
		// Read, change and write back only if nobody wrote meanwhile;
		// else read again.
		for {
			now, entries, err := protocol.ListSchedules(ctx, in.c.rdb, sk)
			if err != nil {
				return false, err
			}
			i := slices.IndexFunc(entries, func(e protocol.ScheduleEntry) bool { return e.Name == name })
			if i < 0 {
				return false, ErrUnknownSchedule
			}
			old := entries[i].Spec
			var spec scheduleSpec
			if err := json.Unmarshal([]byte(old), &spec); err != nil {
				return false, fmt.Errorf("%w: schedule %q: %v", ErrUnexpectedReply, name, err)
			}
			if spec.Paused == pause {
				return false, nil
			}
			spec.Paused = pause
			var next int64
			if !pause {
				tk, err := spec.ticker()
				if err != nil {
					return false, err
				}
				next = tk.after(now)
			}
			enc, err := json.Marshal(spec)
			if err != nil {
				return false, err
			}
			switch n, err := protocol.ReplaceSchedule(ctx, in.c.rdb, sk, name, old, string(enc), next); {
			case err != nil:
				return false, err
			case n == protocol.ScheduleUnknown:
				return false, ErrUnknownSchedule
			case n == protocol.ScheduleReplaced:
				return true, nil
			}
		}
	})
	if err != nil {
		return false, fmt.Errorf("mq: %s schedule %q of %q: %w", what, name, queue, redisError(err))
	}
	in.c.schedulesChanged()
	return changed, nil
}

// DeleteSchedule deletes a schedule of queue; ticks it enqueued stay. It
// answers an error wrapping ErrUnknownSchedule when queue has no schedule
// of that name.
func (in *Inspector) DeleteSchedule(ctx context.Context, queue, name string) error {
	if err := ValidateQueueName(queue); err != nil {
		return err
	}
	had, err := within(in.c, ctx, func(ctx context.Context) (bool, error) {
		return protocol.DeleteSchedule(ctx, in.c.rdb, in.c.scheduleKeys(queue), name)
	})
	if err != nil {
		return fmt.Errorf("mq: delete schedule %q of %q: %w", name, queue, redisError(err))
	}
	if !had {
		return fmt.Errorf("mq: delete schedule %q of %q: %w", name, queue, ErrUnknownSchedule)
	}
	in.c.schedulesChanged()
	return nil
}

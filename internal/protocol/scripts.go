package protocol

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is what the protocol needs of a Redis client: running scripts, one
// call at a time or many in one round trip. A redis.UniversalClient is one.
type Redis interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
	Process(ctx context.Context, cmd redis.Cmder) error
}

// ErrUnexpectedReply reports a script reply of a shape the protocol does
// not know: a script of another version, or a damaged reply.
var ErrUnexpectedReply = errors.New("unexpected reply from Redis")

// Every script is composed at load time from shared parts and its own
// body, so that the status computation (docs/protocol.md §2) and the queue
// counts (§10) are each written once. The composed texts are pinned by a
// golden test (testdata/*.lua.golden).
var scriptParts = map[string][]string{
	"enqueue":     {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "wake-backlog", "enqueue"},
	"enqueue-new": {"lib:", "wake-backlog", "enqueue-new-full", "enqueue-new"}, // binds its own few keys: no prelude, and no function (a closure a call)
	"dequeue":     {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "counts", "history", "attempt-errors", "outcome", "outcome-ext", "wake-backlog", "followups", "limits", "dequeue"},
	// The lean poll (docs/protocol.md §4), for a queue that uses no
	// extension with keys of its own: without limits.lua and
	// outcome-ext.lua, whose closures every call would make for nothing,
	// and without followups.lua but for a call that enqueues follow-ups in
	// the script (§22). Both leave out prelude-ext.lua too (the keys a lean call is not
	// passed, named only in code it never reaches), and the functions of
	// prelude.lua and status.lua the poll never calls: refuse_when_full
	// (an enqueue's) and status_name (msg-status's).
	"dequeue-lean":           {"lib", leanPrelude, leanStatus, "counts", "history", "attempt-errors", "outcome", "dequeue"},
	"dequeue-lean-followups": {"lib", leanPrelude, leanStatus, "counts", "history", "attempt-errors", "outcome", "wake-backlog", "followups", "dequeue"},
	// The lean poll of a queue that uses limits (§19) and no other
	// extension with keys of its own: every key, and limits.lua, but
	// neither outcome-ext.lua nor followups.lua.
	"dequeue-limits": {"lib", leanPrelude, leanStatus, "prelude-limits", "counts", "history", "attempt-errors", "outcome", "limits", "dequeue"},
	"msg-status":     {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "attempt-errors", "msg-status"},
	"renew":          {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "history", "attempt-errors", "outcome", "outcome-ext", "renew"},
	"queue-counts":   {"lib", "prelude", "prelude-ext", "prelude-limits", "counts", "queue-counts"},
	"delete":         {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "history", "attempt-errors", "outcome", "outcome-ext", "limits", "delete"},
	"pause":          {"lib", "prelude", "prelude-ext", "prelude-limits", "pause"},
	"dead-letters":   {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "dead-letters"},
	"heartbeat":      {"lib", "prelude", "prelude-ext", "prelude-limits", "heartbeat"},
	"history-read":   {"lib", "prelude", "prelude-ext", "prelude-limits", "history", "history-read"},
	"tick":           {"lib", "tick"}, // binds its own few keys: no prelude
	"schedules":      {"lib", "schedules"},
	"result":         {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "result"},
	"batch-tick":     {"lib", "prelude", "prelude-ext", "prelude-limits", "batch-tick"},
	"cancel":         {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "history", "attempt-errors", "outcome", "outcome-ext", "limits", "cancel", "delete"}, // a queued message goes on to delete.lua
	"limits-set":     {"lib", "prelude", "prelude-ext", "prelude-limits", "status", "history", "attempt-errors", "outcome", "outcome-ext", "limits", "limits-set"},

	// enqueue-new.lua's short call, passed neither mid-circle nor the
	// isleep lists (docs/protocol.md §3)
	"enqueue-new-short": {"lib:", "wake-backlog", "enqueue-new-short", "enqueue-new"},
}

// leanPrelude and leanStatus are the parts of prelude.lua and status.lua
// the lean poll's compositions take: the functions they call, not those
// of other scripts, each a closure a call would make for nothing.
const (
	leanPrelude = "prelude:go_on_when_full,pack,unpack_items,wake_one,due_sooner"
	leanStatus  = "status:message_status,has_requeue"
)

// The composed scripts, set by Load.
var (
	enqueueScript, enqueueNewScript, enqueueNewShortScript, dequeueScript, dequeueLeanScript, dequeueLeanFollowUpsScript, dequeueLimitsScript, msgStatusScript, renewScript, countsScript,
	deleteScript, pauseScript, deadScript, heartbeatScript, historyScript *redis.Script
	tickScript, schedulesScript *redis.Script
	resultScript                *redis.Script
	batchTickScript             *redis.Script
	cancelScript                *redis.Script
	limitsSetScript             *redis.Script

	// the compositions of enqueue-new.lua as runLean runs them
	enqueueNewLean, enqueueNewShortLean leanScript
)

// luaFiles holds the .lua files the scripts are composed from, by file
// name: the files of the repository's lua/ directory.
var luaFiles fs.FS

// Load composes every script from luaFS, which holds the files of the
// repository's lua/ directory by file name. Package mq, which embeds that
// directory (the files live at the repository's root, outside this
// package's reach), calls it once as it is initialised, before anything
// can call a script; this package's tests call it with the files read
// from disk. It panics when a file is missing, a build error.
func Load(luaFS fs.FS) {
	luaFiles = luaFS
	enqueueScript = composeScript("enqueue")
	enqueueNewScript = composeScript("enqueue-new")
	enqueueNewShortScript = composeScript("enqueue-new-short")
	enqueueNewLean = newLeanScript("enqueue-new")
	enqueueNewShortLean = newLeanScript("enqueue-new-short")
	dequeueScript = composeScript("dequeue")
	dequeueLeanScript = composeScript("dequeue-lean")
	dequeueLeanFollowUpsScript = composeScript("dequeue-lean-followups")
	dequeueLimitsScript = composeScript("dequeue-limits")
	msgStatusScript = composeScript("msg-status")
	renewScript = composeScript("renew")
	countsScript = composeScript("queue-counts")
	deleteScript = composeScript("delete")
	pauseScript = composeScript("pause")
	deadScript = composeScript("dead-letters")
	heartbeatScript = composeScript("heartbeat")
	historyScript = composeScript("history-read")
	tickScript = composeScript("tick")
	schedulesScript = composeScript("schedules")
	resultScript = composeScript("result")
	batchTickScript = composeScript("batch-tick")
	cancelScript = composeScript("cancel")
	limitsSetScript = composeScript("limits-set")
}

// composeSource joins the named files of lua/ into one script text. A
// part "lib:f,g" is lib.lua with only its functions f and g (and all that
// is not a function of its own): Redis makes a closure of every function
// a script defines at every call, a cost worth saving on the hot path.
func composeSource(parts ...string) string {
	var b strings.Builder
	var dropped []string
	for i, p := range parts {
		name, only, subset := strings.Cut(p, ":")
		src, err := fs.ReadFile(luaFiles, name+".lua")
		if err != nil {
			panic("protocol: missing embedded script " + name + ": " + err.Error())
		}
		if subset {
			var d []string
			var keep []string // "lib:": none of its functions
			if only != "" {
				keep = strings.Split(only, ",")
			}
			src, d = onlyFunctions(src, keep)
			dropped = append(dropped, d...)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		b.Write(src)
	}
	text := b.String()
	for _, f := range dropped {
		if strings.Contains(strings.ReplaceAll(text, "function "+f+"(", ""), f+"(") {
			panic("protocol: a script composed of " + strings.Join(parts, ", ") + " calls " + f + ", left out")
		}
	}
	return text
}

// localFunction finds the name of a top-level function a paragraph defines.
var localFunction = regexp.MustCompile(`(?m)^local function ([A-Za-z_][A-Za-z0-9_]*)\(`)

// onlyFunctions answers src, a file of paragraphs (separated by blank
// lines) each defining at most one function, without the paragraphs of
// functions not named in keep, and the names of those it left out. It
// panics when a name in keep is not defined in src.
func onlyFunctions(src []byte, keep []string) ([]byte, []string) {
	var out [][]byte
	var dropped []string
	found := map[string]bool{}
	for _, para := range bytes.Split(src, []byte("\n\n")) {
		if m := localFunction.FindSubmatch(para); m != nil {
			f := string(m[1])
			if !slices.Contains(keep, f) {
				dropped = append(dropped, f)
				continue
			}
			found[f] = true
		}
		out = append(out, para)
	}
	for _, f := range keep {
		if !found[f] {
			panic("protocol: no function " + f + " to compose")
		}
	}
	text := bytes.Join(out, []byte("\n\n"))
	if bytes.HasSuffix(src, []byte("\n")) && !bytes.HasSuffix(text, []byte("\n")) {
		text = append(text, '\n')
	}
	return text, dropped
}

func composeScript(name string) *redis.Script {
	return redis.NewScript(composeSource(scriptParts[name]...))
}

// EndOfCircle is the sentinel that marks one lap of a queue's mid-circle
// (docs/protocol.md §1); no message may have it as its id.
const EndOfCircle = "end-of-circle"

// Code is a script's answer code: the answer about one message of an
// enqueue, an outcome's answer, or the code that starts an error reply of
// Redis (see [ErrorCode]).
type Code string

// The codes of the scripts' answers.
const (
	// Added, Updated: an enqueue took effect (docs/protocol.md §3).
	Added   Code = "added"
	Updated Code = "updated"
	// AlreadyQueued, Locked, Backoff: an enqueue was refused (§3).
	AlreadyQueued Code = "already-queued"
	Locked        Code = "locked"
	Backoff       Code = "backoff"
	// DuplicateQueued, DuplicateLocked, DuplicateBackoff: an enqueue of
	// a message with a dedupe window was refused, its id being queued,
	// locked or in its window (§14).
	DuplicateQueued  Code = "duplicate-queued"
	DuplicateLocked  Code = "duplicate-locked"
	DuplicateBackoff Code = "duplicate-backoff"
	// Recorded: an outcome was written (§6).
	Recorded Code = "ok"
	// LockLost: an outcome was not written, its lock being lost (§6, §7).
	LockLost Code = "lock-lost"
	// OOM: Redis refused a script over its maxmemory (§9).
	OOM Code = "OOM"
	// Stale: a poll call came after a later call of its poller (§8).
	Stale Code = "MQSTALE"
	// BadOutcome: a poll call named an outcome the scripts do not know
	// (§6); the call wrote nothing.
	BadOutcome Code = "MQOUTCOME"
	// NeedKeys: a lean poll call (§4) found that the queue uses an
	// extension with keys of its own, or carried a result or follow-ups;
	// the call wrote nothing, and is to be sent again with every key.
	NeedKeys Code = "MQKEYS"
	// NeedLimits: a lean poll call (§4) without limits.lua or every key
	// found that the queue uses limits (§19) and no other extension with
	// keys of its own; the call wrote nothing, and is to be sent again
	// with every key to the lean composition with limits.lua.
	NeedLimits Code = "MQLIMITS"
	// NoScript: EVALSHA of a script not in the server's cache.
	NoScript Code = "NOSCRIPT"
)

// ErrorCode answers the code of an error reply of Redis (its first word,
// such as OOM or MQSTALE), or "" when err is not an error reply.
func ErrorCode(err error) Code {
	if err == nil {
		return "" // before re, which escapes: an allocation otherwise
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return ""
	}
	code, _, _ := strings.Cut(re.Error(), " ")
	return Code(code)
}

// runPipelined runs one script many times in one round trip, each call
// with its own arguments, and answers each call's result in order. Calls
// that met an empty script cache are sent again with EVAL, which is safe:
// a NOSCRIPT answer means the call did nothing.
func runPipelined(ctx context.Context, r Redis, s *redis.Script, keys []string, argss [][]any) []*redis.Cmd {
	pipe := r.Pipeline()
	cmds := make([]*redis.Cmd, len(argss))
	for i, args := range argss {
		cmds[i] = s.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx) // errors stay on each command
	var retry []int
	for i, c := range cmds {
		if ErrorCode(c.Err()) == NoScript {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe = r.Pipeline()
		for _, i := range retry {
			cmds[i] = s.Eval(ctx, pipe, keys, argss[i]...)
		}
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}

// MS is d in whole milliseconds as the scripts take durations: rounded
// up, so that a positive duration never becomes 0; a negative one is 0.
func MS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// boolArg is b as the scripts take flags.
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// EnqueueMessage is one message of an enqueue call, with its options
// (docs/protocol.md §3).
type EnqueueMessage struct {
	// ID is the message id.
	ID string
	// Data is the message as stored.
	Data []byte
	// InitialBackoff delays the first handling; 0 for none.
	InitialBackoff time.Duration
	// LockTime is the message's own lock time; 0 for the worker's.
	LockTime time.Duration
	// CanUpdate, CanRequeue and ResetInitialBackoff are the options of
	// §3, as their namesakes in mq.EnqueueOptions.
	CanUpdate, CanRequeue, ResetInitialBackoff bool
	// At, when not zero, is the time to hand the message out at, by the
	// server's clock, in Unix ms: it replaces InitialBackoff by the time
	// from the server's now until then (none once it is past).
	At int64
	// Metadata is the message's metadata as the client encoded it, kept
	// beside its content (nil for none).
	Metadata []byte
	// Policy is the message's own policy (§14); the zero Policy for none.
	Policy Policy
	// Priority is the message's priority (§18): PriorityHigh,
	// PriorityLow, or "" for normal.
	Priority string
	// LimitKey is the message's limit key (§19), "" for none.
	LimitKey string
	// FreshID tells that the client drew ID at random for this message
	// (a UUID): no key of the queue holds it, nor metadata a Carmine
	// worker's collection left behind, so a lean call deletes none (§3).
	FreshID bool
}

// WakeBacklog is the scripts' WAKE_BACKLOG (lua/wake-backlog.lua): an enqueue call
// that pushes k ids onto mids-ready wakes a sleeping worker for them only
// when the list held fewer than WakeBacklog*k ids before the call
// (docs/protocol.md §5), and so do k follow-ups a poll call enqueues to
// a queue in the script (§22).
const WakeBacklog = 1024

// The priorities of §18 as the scripts spell them; normal is "".
const (
	PriorityHigh = "h"
	PriorityLow  = "l"
)

// EnqueueCall is one enqueue call (enqueue.lua, or enqueue-new.lua when it
// takes the call): its messages, decided in turn, and its receipt (§8).
type EnqueueCall struct {
	// Token identifies the call, drawn at random once and sent again with
	// every resend of the call. A call of one message whose id the client
	// drew (FreshID) has that id as its token instead, Token unused: the
	// id is as unique, and the lean call passes it once (§8).
	Token string
	// Sends, when not nil, tells the script which send of the call is the
	// first: a first send cannot find a receipt under a token drawn for
	// it, and skips looking (§8). One Sends goes with one Token; copies of
	// the call share it. nil: every send looks.
	Sends *Sends
	// Keep is how long Redis keeps the call's receipt at least.
	Keep time.Duration
	// IndexOnly keeps delayed messages off mid-circle: in due alone (no
	// Carmine worker reads the queue, §11).
	IndexOnly bool
	// Messages are the call's messages.
	Messages []EnqueueMessage
	// Backlogs, when not nil, is what the client knows of its queues'
	// backlogs: a lean call to a queue whose mids-ready held the wake
	// backlog at the client's last lean call goes short (§3).
	Backlogs *Backlogs
}

// Backlogs is what a client remembers, between its enqueue calls, of the
// queues whose mids-ready held the wake backlog (WakeBacklog a message)
// at its last lean call to them (docs/protocol.md §3, §5): a lean call to
// such a queue goes short, passed neither mid-circle nor the isleep lists,
// which it would not need; one that finds the list shorter changes
// nothing and answers so, and the call goes again with them. The zero
// Backlogs knows of none; it is safe for concurrent use.
type Backlogs struct {
	deep sync.Map // a queue's messages key -> struct{}
}

// has tells whether the queue of messages key q had the backlog.
func (b *Backlogs) has(q string) bool {
	_, ok := b.deep.Load(q)
	return ok
}

// set records whether the queue of messages key q has the backlog.
func (b *Backlogs) set(q string, deep bool) {
	if deep {
		b.deep.Store(q, struct{}{})
	} else {
		b.deep.Delete(q)
	}
}

// argv is the call's script arguments.
func (c EnqueueCall) argv() []any {
	args := make([]any, 0, 4+13*len(c.Messages))
	var first any = "0"
	if c.Sends != nil {
		first = c.Sends
	}
	args = append(args, c.token(), MS(c.Keep), boolArg(c.IndexOnly), first)
	for _, m := range c.Messages {
		args = append(args, m.ID, m.Data, MS(m.InitialBackoff), MS(m.LockTime),
			boolArg(m.CanUpdate), boolArg(m.CanRequeue), boolArg(m.ResetInitialBackoff), max(0, m.At), m.Metadata,
			m.policyArg(), boolArg(m.Policy.UniqueFor > 0), m.Priority, m.LimitKey)
	}
	return args
}

// policyArg is the message's encoded policy, empty for none.
func (m EnqueueMessage) policyArg() []byte {
	if m.Policy.IsZero() {
		return nil
	}
	return EncodePolicy(m.Policy)
}

// Sends is an argument of an enqueue call that its Redis client encodes
// as "1" the first time it writes the call and "0" every time after: the
// client (go-redis) encodes every argument again, through MarshalBinary,
// each time it writes a command, so a call it sends again after a
// dropped connection or a timeout, or after NOSCRIPT as EVAL, or to
// another node after a redirect, says so to the script, which then looks
// for the call's receipt. (A proxy between the client and Redis that
// resent commands on its own would defeat this; go-redis does not.)
type Sends struct {
	written atomic.Bool
	// token is the call's token, as enqueue-new.lua's token argument
	// (firstSend) writes it on the first send.
	token string
}

// MarshalBinary encodes the argument: "1" the first time, "0" after.
func (s *Sends) MarshalBinary() ([]byte, error) {
	if s.written.Swap(true) {
		return []byte("0"), nil
	}
	return []byte("1"), nil
}

// EnqueueAnswer is what one enqueue call answered.
type EnqueueAnswer struct {
	// Codes holds one answer per message, in order, when Err is nil:
	// Added, Updated, AlreadyQueued, Locked or Backoff (the caller tells
	// any other code for an unexpected reply, message by message). It
	// may be shared between answers: read it, never change it.
	Codes []Code
	// Err is the call's error: Redis's (an OOM error reply when Redis is
	// full, see ErrorCode), or ErrUnexpectedReply.
	Err error
}

// Enqueue runs one enqueue call. A call of messages with no delay, on its
// first send, goes through enqueue-new.lua first, which adds them when
// their ids are new with a few keys, arguments and commands, and
// otherwise writes nothing and sends the call on to enqueue.lua; its
// short call (the queue had the wake backlog, call.Backlogs) goes again
// full when the backlog is gone. all is every key of the queue.
func Enqueue(ctx context.Context, r Redis, all []string, call EnqueueCall) EnqueueAnswer {
	if call.lean() {
		q := all[keys.Messages]
		short := call.Backlogs != nil && call.Backlogs.has(q)
		v, err := runLean(ctx, r, all, call, short)
		if short && err == nil && v == leanKeysNeeded {
			// Below the backlog: the short call changed nothing, and this
			// reply is to its first send (a later one steps aside). The
			// call goes again, full, as on its first send.
			call.Backlogs.set(q, false)
			call.Sends = new(Sends)
			v, err = runLean(ctx, r, all, call, false)
			short = false
		}
		switch {
		case err == nil && (v == leanAdded || v == leanDeep):
			if call.Backlogs != nil && !short && v == leanDeep {
				call.Backlogs.set(q, true)
			}
			return EnqueueAnswer{Codes: addedCodes(len(call.Messages))}
		case err == nil:
			return EnqueueAnswer{Err: fmt.Errorf("%w: enqueue-new answered %v", ErrUnexpectedReply, v)}
		case err != redis.Nil:
			return EnqueueAnswer{Err: err}
		}
		// Not added: an id is in the queue (or twice in the call), or this
		// answer is to a later send of the call, after an earlier one that
		// may have been applied. enqueue.lua decides, under the same
		// token, looking for the call's receipt: its Sends is written.
	}
	reply, err := enqueueScript.Run(ctx, r, all, call.argv()...).StringSlice()
	return enqueueAnswer(call, reply, err)
}

// enqueue-new.lua's replies, numbers (nil: not taken).
const (
	leanKeysNeeded = 0 // a short call found mids-ready below the backlog, and changed nothing
	leanAdded      = 1 // every message added
	leanDeep       = 2 // every message added, past the wake backlog: nobody woken
)

// addedOne is the codes of a call of one message, every one added,
// shared: the callers only read them.
var addedOne = []Code{Added}

// addedCodes answers the codes of a call of n messages, every one added.
func addedCodes(n int) []Code {
	if n == 1 {
		return addedOne
	}
	codes := make([]Code, n)
	for i := range codes {
		codes[i] = Added
	}
	return codes
}

// lean tells whether the call may go through enqueue-new.lua: messages
// added ready if their ids are new, on the call's first send. A message
// that may update, requeue or reset a held id says its producer expects
// the id to be held, where the lean try would cost a round trip for
// nothing: such a call goes to enqueue.lua at once.
func (c EnqueueCall) lean() bool {
	if len(c.Messages) == 0 || c.Sends == nil || c.Sends.written.Load() {
		return false
	}
	for _, m := range c.Messages {
		if MS(m.InitialBackoff) != 0 || m.At != 0 || m.CanUpdate || m.CanRequeue || m.ResetInitialBackoff || !m.Policy.IsZero() || m.Priority != "" || m.LimitKey != "" {
			return false
		}
	}
	return true
}

// leanOptional tells whether enqueue-new.lua takes lock-times and meta:
// when a message has a lock time or metadata, or stale metadata of its id
// may be there (no IndexOnly, and an id the client did not draw).
func (c EnqueueCall) leanOptional() bool {
	for _, m := range c.Messages {
		if MS(m.LockTime) > 0 || len(m.Metadata) > 0 || !c.IndexOnly && !m.FreshID {
			return true
		}
	}
	return false
}

// token answers the call's token: the id of its one message when the
// client drew it (a random UUID, unique per call as a drawn token is),
// else Token (§8).
func (c EnqueueCall) token() string {
	if c.idToken() {
		return c.Messages[0].ID
	}
	return c.Token
}

// idToken tells whether the call's token is its one message's id, which
// the client drew.
func (c EnqueueCall) idToken() bool {
	return len(c.Messages) == 1 && c.Messages[0].FreshID
}

// sampled tells whether the call is one of the one in sixteen whose
// first send reads when the receipts' generation began (its token ends in
// '0', §8): only such a call passes enqueue-new.lua the previous
// generation's key and the receipts' keep time.
func (c EnqueueCall) sampled() bool {
	return strings.HasSuffix(c.token(), "0")
}

// runLean runs enqueue-new.lua for call, its short composition when
// short, as go-redis's Script.Run runs a script (EVALSHA, then EVAL when
// Redis answers NOSCRIPT), and answers its reply, a number (redis.Nil
// for nil). It builds the command's one slice of arguments itself:
// Script.Run makes an interface value of the script's hash and of each
// key, an allocation each, and takes the keys and the arguments in two
// slices more. Here the hash was made one once (leanScript), and each key
// goes as a pointer into all (strArg), which go-redis writes, and routes
// by in a cluster, as the string it points to; all is not changed
// meanwhile (the client's keys of the queue, never changed).
func runLean(ctx context.Context, r Redis, all []string, c EnqueueCall, short bool) (int64, error) {
	s := &enqueueNewLean
	if short {
		s = &enqueueNewShortLean
	}
	args := make([]any, 3, 3+8+3+4*len(c.Messages))
	args[0], args[1] = "evalsha", s.hash
	args = appendLeanKeys(args, all, c, short)
	args[2] = len(args) - 3
	args = appendLeanArgv(args, c)
	cmd := redis.NewCmd(ctx, args...)
	cmd.SetFirstKeyPos(3)
	_ = r.Process(ctx, cmd)
	if ErrorCode(cmd.Err()) == NoScript {
		// Sent again: the token argument goes empty (firstSend), and the
		// script steps aside for enqueue.lua, as after any later send. (A
		// slice of its own: the first command's may still be read, by a
		// hook.)
		args = slices.Clone(args)
		args[0], args[1] = "eval", s.src
		cmd = redis.NewCmd(ctx, args...)
		cmd.SetFirstKeyPos(3)
		_ = r.Process(ctx, cmd)
	}
	return cmd.Int64()
}

// leanScript is a composition of enqueue-new.lua as runLean runs it: its
// hash and its text, each made an interface value once.
type leanScript struct{ hash, src any }

// newLeanScript answers the leanScript of the script composed of parts.
func newLeanScript(name string) leanScript {
	src := composeSource(scriptParts[name]...)
	return leanScript{hash: redis.NewScript(src).Hash(), src: src}
}

// appendLeanKeys appends to dst the keys enqueue-new.lua takes, as
// pointers into all, the queue's every key: in a short call, neither
// mid-circle nor the isleep lists.
func appendLeanKeys(dst []any, all []string, c EnqueueCall, short bool) []any {
	key := func(i keys.Index) *strArg { return (*strArg)(&all[i]) }
	dst = append(dst, key(keys.Messages), key(keys.UDTs), key(keys.MidsReady), key(keys.EnqueueReceipts))
	if !short {
		dst = append(dst, key(keys.MidCircle), key(keys.ISleepA), key(keys.ISleepB))
	}
	if c.sampled() {
		dst = append(dst, key(keys.EnqueueReceiptsPrev))
	}
	if c.leanOptional() {
		dst = append(dst, key(keys.LockTimes), key(keys.Meta))
	}
	return dst
}

// strArg is a script's key or argument given as a pointer to its
// string, which go-redis writes as it is (MarshalBinary), routes by in a
// cluster when it is the first key, and shows in a command's text
// (String), as it does a string.
type strArg string

// MarshalBinary answers the string's bytes, not copied: go-redis copies them
// into its write buffer and keeps nothing.
func (k *strArg) MarshalBinary() ([]byte, error) {
	return unsafe.Slice(unsafe.StringData(string(*k)), len(*k)), nil
}

// String answers the string.
func (k *strArg) String() string { return string(*k) }

// appendLeanArgv appends to dst enqueue-new.lua's arguments, in step with
// appendLeanKeys: the token last before the messages, and, when it is the
// one message's id, the id not passed again.
func appendLeanArgv(dst []any, c EnqueueCall) []any {
	optional := c.leanOptional()
	if c.sampled() {
		dst = append(dst, MS(c.Keep))
	}
	if optional {
		dst = append(dst, boolArg(!c.IndexOnly))
	}
	idToken := c.idToken()
	c.Sends.token = c.token()
	dst = append(dst, (*firstSend)(c.Sends))
	// Each message's id and content go as pointers into c.Messages
	// (strArg, bytesArg): a string or a slice made an interface value is
	// an allocation each, a pointer none. The messages are not changed while the call runs.
	for i := range c.Messages {
		m := &c.Messages[i]
		if !idToken {
			dst = append(dst, (*strArg)(&m.ID))
		}
		dst = append(dst, (*bytesArg)(&m.Data))
		if optional {
			dst = append(dst, MS(m.LockTime), (*bytesArg)(&m.Metadata))
		}
	}
	return dst
}

// bytesArg is a script argument given as a pointer to its bytes, which
// go-redis writes as they are, as it writes a []byte.
type bytesArg []byte

// MarshalBinary answers the bytes, not copied.
func (b *bytesArg) MarshalBinary() ([]byte, error) { return *b, nil }

// String answers the bytes as a string, for a command's text (go-redis's
// Cmd.String, which hooks such as tracing show).
func (b *bytesArg) String() string { return string(*b) }

// firstSend is enqueue-new.lua's token argument, the call's Sends seen as
// another type: the call's token the first time its Redis client writes
// the call (or any copy of it), empty every time after, as Sends tells
// enqueue.lua: a later send may follow an applied one, whose receipt only
// enqueue.lua looks for. It marks the call's Sends written. Being the
// call's Sends, it costs no allocation of its own.
type firstSend Sends

// MarshalBinary encodes the argument: the token the first time, empty
// after. The token's bytes are not copied: go-redis copies them into
// its write buffer and keeps nothing.
func (t *firstSend) MarshalBinary() ([]byte, error) {
	if t.written.Swap(true) {
		return nil, nil
	}
	return unsafe.Slice(unsafe.StringData(t.token), len(t.token)), nil
}

// String answers the token, for a command's text; it marks nothing.
func (t *firstSend) String() string { return t.token }

// EnqueuePipelined runs many enqueue calls in one round trip and answers
// each, in order.
func EnqueuePipelined(ctx context.Context, r Redis, keys []string, calls []EnqueueCall) []EnqueueAnswer {
	argss := make([][]any, len(calls))
	for i, c := range calls {
		argss[i] = c.argv()
	}
	cmds := runPipelined(ctx, r, enqueueScript, keys, argss)
	answers := make([]EnqueueAnswer, len(calls))
	for i, cmd := range cmds {
		reply, err := cmd.StringSlice()
		answers[i] = enqueueAnswer(calls[i], reply, err)
	}
	return answers
}

func enqueueAnswer(call EnqueueCall, reply []string, err error) EnqueueAnswer {
	if err != nil {
		return EnqueueAnswer{Err: err}
	}
	if len(reply) != len(call.Messages) {
		return EnqueueAnswer{Err: fmt.Errorf("%w: enqueue answered %d of %d", ErrUnexpectedReply, len(reply), len(call.Messages))}
	}
	codes := make([]Code, len(reply))
	for i, s := range reply {
		codes[i] = Code(s)
	}
	return EnqueueAnswer{Codes: codes}
}

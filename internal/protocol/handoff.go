package protocol

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// FollowUp is one message a success hands off (docs/protocol.md §22): its
// target queue and the message as an enqueue takes it, its id already
// derived or given.
type FollowUp struct {
	Queue string
	Msg   EnqueueMessage
}

// The kinds of handoffs records, their first byte.
const (
	HandoffFollowUps  = 'F' // the follow-ups of one success
	HandoffTick       = 'T' // a batch member's final outcome
	HandoffCompletion = 'C' // a completed batch's completion, to enqueue
)

// EncodeFollowUps encodes the follow-ups of one success as one handoffs
// record.
func EncodeFollowUps(fs []FollowUp) ([]byte, error) {
	b := []byte{HandoffFollowUps}
	for _, f := range fs {
		b = appendFollowUp(b, f)
	}
	return b, nil
}

// followUpFields is the number of fields of an encoded follow-up.
const followUpFields = 13

// appendFollowUp appends f to b as its fields, each after its length in
// four little-endian bytes (as a policy is, §14): queue, id, data,
// initial backoff ms, lock time ms, can-update, can-requeue,
// reset-initial-backoff, at, metadata, policy (EncodePolicy, or empty),
// priority, and a version mark.
func appendFollowUp(b []byte, f FollowUp) []byte {
	m := f.Msg
	for _, field := range [followUpFields][]byte{
		[]byte(f.Queue), []byte(m.ID), m.Data,
		strconv.AppendInt(nil, MS(m.InitialBackoff), 10), strconv.AppendInt(nil, MS(m.LockTime), 10),
		[]byte(boolArg(m.CanUpdate)), []byte(boolArg(m.CanRequeue)), []byte(boolArg(m.ResetInitialBackoff)),
		strconv.AppendInt(nil, m.At, 10), m.Metadata, m.policyArg(), []byte(m.Priority), []byte("f1"),
	} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(field)))
		b = append(b, field...)
	}
	return b
}

// decodeFollowUps decodes what EncodeFollowUps wrote after its kind byte.
func decodeFollowUps(b []byte) ([]FollowUp, error) {
	var out []FollowUp
	for len(b) > 0 {
		var fields [followUpFields][]byte
		for i := range fields {
			if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
				return nil, fmt.Errorf("%w: follow-ups record truncated", ErrUnexpectedReply)
			}
			n := binary.LittleEndian.Uint32(b)
			fields[i], b = b[4:4+n], b[4+n:]
		}
		if string(fields[12]) != "f1" {
			return nil, fmt.Errorf("%w: follow-up of an unknown layout", ErrUnexpectedReply)
		}
		num := func(f []byte) int64 { v, _ := strconv.ParseInt(string(f), 10, 64); return v }
		m := EnqueueMessage{
			ID: string(fields[1]), Data: fields[2],
			InitialBackoff: time.Duration(num(fields[3])) * time.Millisecond,
			LockTime:       time.Duration(num(fields[4])) * time.Millisecond,
			CanUpdate:      string(fields[5]) == "1", CanRequeue: string(fields[6]) == "1",
			ResetInitialBackoff: string(fields[7]) == "1", At: num(fields[8]), Priority: string(fields[11]),
		}
		if len(fields[9]) > 0 {
			m.Metadata = fields[9]
		}
		if len(fields[10]) > 0 {
			p, err := DecodePolicy(fields[10])
			if err != nil {
				return nil, err
			}
			m.Policy = p
		}
		out = append(out, FollowUp{Queue: string(fields[0]), Msg: m})
	}
	return out, nil
}

// Handoff is one decoded handoffs record.
type Handoff struct {
	// Raw is the record as stored, to remove it by.
	Raw string
	// Kind is HandoffFollowUps, HandoffTick or HandoffCompletion.
	Kind byte
	// FollowUps are a HandoffFollowUps record's messages.
	FollowUps []FollowUp
	// Tick is a HandoffTick record's tick.
	Tick MemberTick
	// Batch is the batch id of a HandoffCompletion record.
	Batch string
}

// MemberTick is a batch member's final outcome, to count in its batch.
type MemberTick struct {
	// ID is the tick's id: the member's id and first-enqueue time.
	ID string
	// Dead is set for a dead letter, Cancelled for a cancelled member
	// (§20); neither, the member succeeded.
	Dead, Cancelled bool
	// Batch and Queue are the batch id and its completion queue.
	Batch, Queue string
}

// BatchRef is what a member's policy names its batch by: the batch id and
// the queue that receives its completion.
func BatchRef(batch, queue string) string { return batch + "\n" + queue }

// DecodeHandoff decodes a handoffs record.
func DecodeHandoff(raw string) (Handoff, error) {
	h := Handoff{Raw: raw}
	if raw == "" {
		return h, fmt.Errorf("%w: empty handoffs record", ErrUnexpectedReply)
	}
	h.Kind = raw[0]
	switch h.Kind {
	case HandoffFollowUps:
		fs, err := decodeFollowUps([]byte(raw[1:]))
		if err != nil {
			return h, err
		}
		h.FollowUps = fs
	case HandoffTick:
		// T<kind>\n<udt>\n<batch>\n<queue>\n<mid> (outcome.lua, tick_batch)
		parts := strings.SplitN(raw[min(3, len(raw)):], "\n", 4)
		if len(raw) < 3 || raw[2] != '\n' || len(parts) != 4 {
			return h, fmt.Errorf("%w: tick record %q", ErrUnexpectedReply, raw)
		}
		h.Tick = MemberTick{ID: parts[3] + "/" + parts[0], Dead: raw[1] == 'd', Cancelled: raw[1] == 'c', Batch: parts[1], Queue: parts[2]}
	case HandoffCompletion:
		h.Batch = raw[1:]
	default:
		return h, fmt.Errorf("%w: handoffs record of kind %q", ErrUnexpectedReply, h.Kind)
	}
	return h, nil
}

// ReadHandoffs answers up to n records at the head of the queue's
// handoffs, raw.
func ReadHandoffs(ctx context.Context, r redis.Cmdable, ks []string, n int) ([]string, error) {
	return r.LRange(ctx, ks[keys.Handoffs], 0, int64(n-1)).Result()
}

// RemoveHandoffs removes delivered records from the queue's handoffs, each
// once, in one round trip. (LREM of the record itself, not a trim: a
// relay elsewhere may have delivered and removed the same records.)
func RemoveHandoffs(ctx context.Context, r redis.Cmdable, ks []string, raws []string) error {
	if len(raws) == 0 {
		return nil
	}
	pipe := r.Pipeline()
	for _, raw := range raws {
		pipe.LRem(ctx, ks[keys.Handoffs], 1, raw)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// CountHandoffs answers how many records wait in the queue's handoffs.
func CountHandoffs(ctx context.Context, r redis.Cmdable, ks []string) (int64, error) {
	return r.LLen(ctx, ks[keys.Handoffs]).Result()
}

// Tick answers of batch-tick.lua.
const (
	TickSeen     = "seen"
	TickUnknown  = "unknown"
	TickCounted  = "counted"
	TickComplete = "complete"
)

// BatchTick counts t in its batch, in the completion queue whose keys are
// ks (batch-tick.lua), keeping its id for keep.
func BatchTick(ctx context.Context, r Redis, ks []string, t MemberTick, keep time.Duration) (string, error) {
	return batchTickScript.Run(ctx, r, ks, t.ID, t.kind(), t.Batch, MS(keep)).Text()
}

// kind is t's kind as batch-tick.lua takes it.
func (t MemberTick) kind() string {
	switch {
	case t.Cancelled:
		return "c"
	case t.Dead:
		return "d"
	}
	return "s"
}

// BatchCreate writes batch b in its completion queue's batches: its
// completion message (a FollowUp, encoded) and its number of members.
// The members' queues are marked as using batches (features).
func BatchCreate(ctx context.Context, r redis.Cmdable, ks []string, b string, total int, completion FollowUp, memberKeys [][]string) error {
	spec := appendFollowUp(nil, completion)
	pipe := r.Pipeline()
	pipe.HSet(ctx, ks[keys.Batches], b, spec, b+":n", total, b+":at", time.Now().UnixMilli())
	pipe.HSet(ctx, ks[keys.Features], "batches", "1")
	for _, mk := range memberKeys {
		pipe.HSet(ctx, mk[keys.Features], "batches", "1")
	}
	_, err := pipe.Exec(ctx)
	return err
}

// BatchState is what batches holds of one batch.
type BatchState struct {
	// Found is set when the batch exists.
	Found bool
	// Completion is the completion message.
	Completion FollowUp
	// Total, Succeeded, Dead and Cancelled count its members.
	Total, Succeeded, Dead, Cancelled int64
	// Created and Done are when it was enqueued and completed, in Unix
	// ms (Done 0 while it runs).
	Created, Done int64
}

// BatchRead reads batch b from its completion queue's batches.
func BatchRead(ctx context.Context, r redis.Cmdable, ks []string, b string) (BatchState, error) {
	v, err := r.HMGet(ctx, ks[keys.Batches], b, b+":n", b+":s", b+":d", b+":at", b+":done", b+":c").Result()
	if err != nil {
		return BatchState{}, err
	}
	var st BatchState
	spec, ok := v[0].(string)
	if !ok {
		return st, nil
	}
	st.Found = true
	fs, err := decodeFollowUps([]byte(spec))
	if err != nil || len(fs) != 1 {
		return st, fmt.Errorf("%w: batch %q: its completion: %v", ErrUnexpectedReply, b, err)
	}
	st.Completion = fs[0]
	num := func(x any) int64 {
		s, _ := x.(string)
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	st.Total, st.Succeeded, st.Dead, st.Created, st.Done = num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5])
	st.Cancelled = num(v[6])
	return st, nil
}

// BatchTicks is BatchTick for many ticks of one completion queue, in one
// round trip: it answers each tick's answer, or its error.
func BatchTicks(ctx context.Context, r Redis, ks []string, ts []MemberTick, keep time.Duration) ([]string, []error) {
	argss := make([][]any, len(ts))
	for i, t := range ts {
		argss[i] = []any{t.ID, t.kind(), t.Batch, MS(keep)}
	}
	cmds := runPipelined(ctx, r, batchTickScript, ks, argss)
	answers, errs := make([]string, len(ts)), make([]error, len(ts))
	for i, c := range cmds {
		answers[i], errs[i] = c.Text()
	}
	return answers, errs
}

// InScriptFollowUp is a follow-up the success's own script enqueues
// (docs/protocol.md §22, "In the script"): a message new to its queue,
// added ready with its content, lock time and metadata alone, as
// enqueue-new.lua adds one (IsPlain), atomically with the success.
type InScriptFollowUp struct {
	// Target is the target queue's messages key, "" for the queue of
	// the outcome. Its keys must be reachable from that queue's script:
	// the same Redis, or in a Cluster the same slot.
	Target string
	// ID is the follow-up's id, derived from the handling (a user's id
	// may be held already, which takes enqueue.lua to decide).
	ID string
	// Data, LockTime and Metadata are as in EnqueueMessage.
	Data     []byte
	LockTime time.Duration
	Metadata []byte
}

// HandoffInScript is the first byte of a follow-ups record whose
// follow-ups, or some of them, the outcome's script enqueues itself.
const HandoffInScript = 'S'

// IsPlain tells whether m is a message enqueue-new.lua adds as it is
// when its id is new: no delay, no option for a held id, no policy,
// priority or limit key. Only such a follow-up may go in the script.
func (m EnqueueMessage) IsPlain() bool {
	return MS(m.InitialBackoff) == 0 && m.At == 0 && !m.CanUpdate && !m.CanRequeue && !m.ResetInitialBackoff &&
		m.Policy.IsZero() && m.Priority == "" && m.LimitKey == ""
}

// EncodeInScript encodes the follow-ups of one success as the record
// outcome.lua takes: those to enqueue in the script (in, at least one),
// then relay, a record for the relay (EncodeFollowUps; nil for none),
// which the script appends to handoffs. Its fields are each after its
// length in four little-endian bytes: the number of in, then per
// follow-up its target, id, content, lock time in ms and metadata.
func EncodeInScript(in []InScriptFollowUp, relay []byte) []byte {
	size := 1 + 4 + 20 + len(relay)
	for _, f := range in {
		size += inScriptFields*4 + len(f.Target) + len(f.ID) + len(f.Data) + 20 + len(f.Metadata)
	}
	b := make([]byte, 1, size)
	b[0] = HandoffInScript
	// number appends v's digits after a length written once they are known.
	number := func(b []byte, v int64) []byte {
		at := len(b)
		b = strconv.AppendInt(append(b, 0, 0, 0, 0), v, 10)
		binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		return b
	}
	b = number(b, int64(len(in)))
	for _, f := range in {
		b = append(binary.LittleEndian.AppendUint32(b, uint32(len(f.Target))), f.Target...)
		b = append(binary.LittleEndian.AppendUint32(b, uint32(len(f.ID))), f.ID...)
		b = append(binary.LittleEndian.AppendUint32(b, uint32(len(f.Data))), f.Data...)
		b = number(b, MS(f.LockTime))
		b = append(binary.LittleEndian.AppendUint32(b, uint32(len(f.Metadata))), f.Metadata...)
	}
	return append(b, relay...)
}

// inScriptFields is the number of fields of one follow-up of an
// EncodeInScript record.
const inScriptFields = 5

// splitInScript calls target with the target of each follow-up of an
// EncodeInScript record (with repeats, empty for the queue of the
// outcome), and answers its relay record (nil for none); ok is false for
// a record of another kind, or a damaged one.
func splitInScript(rec []byte, target func([]byte)) (relay []byte, ok bool) {
	r := inScriptReader{rec: rec}
	n, ok := r.count()
	if !ok {
		return nil, false
	}
	for range n {
		t, _, _, _, _, ok := r.next()
		if !ok {
			return nil, false
		}
		if target != nil {
			target(t)
		}
	}
	if len(r.rec) > 0 {
		relay = r.rec
	}
	return relay, true
}

// RelayRecord answers what of a success's follow-ups record goes to the
// queue's handoffs, for the relay: the record itself, or an
// EncodeInScript record's relay part; nil for nothing.
func RelayRecord(rec []byte) []byte {
	if len(rec) == 0 {
		return nil
	}
	if rec[0] != HandoffInScript {
		return rec
	}
	relay, _ := splitInScript(rec, nil)
	return relay
}

// HandoffBlock is the first byte of a success's follow-ups field in a
// poll call whose follow-ups to enqueue in the script travel in the
// call's block (§22, "The block"): the rest names each follow-up's
// target, its group number (0 for the queue itself, g for the g-th
// queue whose keys come after the queue's own), comma-separated.
const HandoffBlock = 'B'

// inScriptBlock answers, for a poll call whose keys are ks (the target
// queues' keys from KEYS index first on, 0 for none) and whose
// completions are cs, the follow-ups field of each completion and the
// block that goes after the call's other arguments: per target group in
// ascending order, per follow-up in the completions' order, its id and
// content. ok is false when some in-script record cannot go in a block
// (a follow-up with a lock time or metadata, or a part for the relay):
// the call then sends every record as it is.
func inScriptBlock(ks []string, first int, cs []Completion) (fields []any, block []any, ok bool) {
	fields = make([]any, len(cs))
	vals := make([]blockArg, 0, 2*len(cs)) // (the usual: one follow-up a success)
	var groups []int                       // (each follow-up's group, kept only once two differ)
	last := -1
	for i, c := range cs {
		if len(c.FollowUps) == 0 || c.FollowUps[0] != HandoffInScript {
			fields[i] = c.FollowUps
			continue
		}
		r := inScriptReader{rec: c.FollowUps}
		n, valid := r.count()
		if !valid {
			return nil, nil, false
		}
		var mark []byte
		for range n {
			target, id, data, lock, meta, valid := r.next()
			if !valid || string(lock) != "0" || len(meta) > 0 {
				return nil, nil, false
			}
			g := targetGroup(ks, first, target)
			if g < 0 {
				return nil, nil, false
			}
			if groups == nil && last >= 0 && g != last {
				groups = make([]int, len(vals)/2, len(vals))
				for k := range groups {
					groups[k] = last
				}
			}
			if groups != nil {
				groups = append(groups, g)
			}
			last = g
			vals = append(vals, id, data)
			if n == 1 && g < len(blockMarks) {
				continue
			}
			if mark == nil {
				mark = append(make([]byte, 0, 8), HandoffBlock)
			} else {
				mark = append(mark, ',')
			}
			mark = strconv.AppendInt(mark, int64(g), 10)
		}
		if len(r.rec) > 0 { // (a part for the relay)
			return nil, nil, false
		}
		switch {
		case n == 0:
			fields[i] = ""
		case mark == nil:
			fields[i] = blockMarks[last]
		default:
			fields[i] = string(mark)
		}
	}
	if len(vals) == 0 {
		return nil, nil, false
	}
	if groups != nil {
		sortBlock(vals, groups)
	}
	// (a []byte put in an interface is an allocation of its own; a pointer
	// into vals is none)
	block = make([]any, len(vals))
	for k := range vals {
		block[k] = &vals[k]
	}
	return fields, block, true
}

// blockArg is one argument of a call's block, its id or content, given
// to go-redis by pointer (encoding.BinaryMarshaler), which puts it in
// the call as it is.
type blockArg []byte

// MarshalBinary answers a's bytes.
func (a *blockArg) MarshalBinary() ([]byte, error) { return *a, nil }

// blockMarks are the fields of a success with one follow-up to the queue
// itself or to the first to fourth other queue, made once.
var blockMarks = [...]any{"B0", "B1", "B2", "B3", "B4"}

// sortBlock orders vals' pairs (id, content) by their groups, keeping
// the order of those of one group.
func sortBlock(vals []blockArg, groups []int) {
	type pair struct {
		g        int
		id, data blockArg
	}
	ps := make([]pair, len(groups))
	for k, g := range groups {
		ps[k] = pair{g, vals[2*k], vals[2*k+1]}
	}
	slices.SortStableFunc(ps, func(a, b pair) int { return a.g - b.g })
	for k, p := range ps {
		vals[2*k], vals[2*k+1] = p.id, p.data
	}
}

// targetGroup answers the group number of target in a call whose keys
// are ks, the target queues' keys from KEYS index first on (0 for
// none): 0 for the queue itself, g for the g-th target queue; -1 when
// the call lacks its keys.
func targetGroup(ks []string, first int, target []byte) int {
	if len(target) == 0 || string(target) == ks[keys.Messages] {
		return 0
	}
	if first > 0 {
		for i := first - 1; i+len(inScriptKeys) <= len(ks); i += len(inScriptKeys) {
			if ks[i] == string(target) {
				return (i-first+1)/len(inScriptKeys) + 1
			}
		}
	}
	return -1
}

// inScriptReader reads an EncodeInScript record: count first, then next
// for each follow-up; what is left in rec after them is the part for
// the relay.
type inScriptReader struct {
	rec []byte
}

// field answers the next field, or false when rec is too short.
func (r *inScriptReader) field() ([]byte, bool) {
	b := r.rec
	if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	r.rec = b[4+n:]
	return b[4 : 4+n : 4+n], true
}

// count reads the record's kind and its number of follow-ups; false for
// a record of another kind, or a damaged one.
func (r *inScriptReader) count() (int, bool) {
	if len(r.rec) == 0 || r.rec[0] != HandoffInScript {
		return 0, false
	}
	r.rec = r.rec[1:]
	f, ok := r.field()
	if !ok || len(f) == 0 || len(f) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range f { // (decimal, as EncodeInScript writes it)
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	return n, true
}

// next reads one follow-up's fields.
func (r *inScriptReader) next() (target, id, data, lock, meta []byte, ok bool) {
	var fs [inScriptFields][]byte
	for i := range fs {
		if fs[i], ok = r.field(); !ok {
			return nil, nil, nil, nil, nil, false
		}
	}
	return fs[0], fs[1], fs[2], fs[3], fs[4], true
}

// inScriptKeys are the keys of a target queue a poll call passes for the
// follow-ups its script enqueues there, in this order (outcome.lua,
// in_script.keys).
var inScriptKeys = [...]keys.Index{keys.Messages, keys.UDTs, keys.MidsReady, keys.MidCircle,
	keys.ISleepA, keys.ISleepB, keys.LockTimes, keys.Meta}

// withInScriptKeys answers the keys of a poll call of the queue whose
// keys are own (all of them, or the first few a lean call passes): own,
// then, when completions hold follow-ups to enqueue in the script to
// other queues, the inScriptKeys of each such queue, and the KEYS index
// (from 1) of the first of these (ARGV[22+7n]), 0 for none. The keys of a
// call whose follow-ups go to one other queue, a worker's usual call, are
// built once per queue, key set and target (inScriptCache), not per call.
func withInScriptKeys(own []string, completions []Completion) ([]string, int) {
	var one []byte // the one other target so far
	var many [][]byte
	for _, c := range completions {
		splitInScript(c.FollowUps, func(t []byte) {
			switch {
			case len(t) == 0 || string(t) == own[keys.Messages] || string(t) == string(one):
			case one == nil:
				one = t
			default:
				for _, m := range many {
					if string(m) == string(t) {
						return
					}
				}
				many = append(many, t)
			}
		})
	}
	if one == nil {
		return own, 0
	}
	if many == nil {
		return inScriptCache.keys(own, one), len(own) + 1
	}
	ks := append(make([]string, 0, len(own)+(1+len(many))*len(inScriptKeys)), own...)
	for _, t := range append([][]byte{one}, many...) {
		ks = append(ks, inScriptCache.targetKeys(t)...)
	}
	return ks, len(own) + 1
}

// inScriptCache holds the keys of poll calls with follow-ups to one other
// queue, by the queue's messages key and key count and by target, and
// each target's inScriptKeys, up to inScriptCacheMax of each.
var inScriptCache = keyCache{calls: map[ownKeys]map[string][]string{}, targets: map[string][]string{}}

// inScriptCacheMax bounds each of inScriptCache's maps: past it, keys are
// built per call (a client with that many queues and targets).
const inScriptCacheMax = 4096

// ownKeys names a queue's key set in a poll call: its messages key and
// how many of its keys the call passes.
type ownKeys struct {
	messages string
	n        int
}

// keyCache is inScriptCache's type; safe for concurrent use.
type keyCache struct {
	mu      sync.RWMutex
	calls   map[ownKeys]map[string][]string
	size    int
	targets map[string][]string
}

// keys answers own followed by target's inScriptKeys.
func (kc *keyCache) keys(own []string, target []byte) []string {
	k := ownKeys{own[keys.Messages], len(own)}
	kc.mu.RLock()
	ks, ok := kc.calls[k][string(target)]
	kc.mu.RUnlock()
	if ok {
		return ks
	}
	ks = append(append(make([]string, 0, len(own)+len(inScriptKeys)), own...), kc.targetKeys(target)...)
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.size < inScriptCacheMax {
		if kc.calls[k] == nil {
			kc.calls[k] = map[string][]string{}
		}
		kc.calls[k][string(target)] = ks
		kc.size++
	}
	return ks
}

// targetKeys answers the inScriptKeys of the queue whose messages key is
// target.
func (kc *keyCache) targetKeys(target []byte) []string {
	kc.mu.RLock()
	ks, ok := kc.targets[string(target)]
	kc.mu.RUnlock()
	if ok {
		return ks
	}
	prefix := strings.TrimSuffix(string(target), keys.Suffixes[keys.Messages])
	ks = make([]string, 0, len(inScriptKeys))
	for _, i := range inScriptKeys {
		ks = append(ks, prefix+keys.Suffixes[i])
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if len(kc.targets) < inScriptCacheMax {
		kc.targets[string(target)] = ks
	}
	return ks
}

package protocol

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/keys"
	"github.com/gocarmine/mq/internal/queuetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// BenchmarkPollFollowUps measures what Redis spends on a busy worker's
// poll calls (LEAN_BENCH_BATCH outcomes recorded and as many messages
// handed out a call, 8 unless told) by what the successes hand off
// (docs/protocol.md §22, "In the script"): "plain", nothing; "own", one
// follow-up each to the queue itself; "other", one follow-up each to
// another queue, whose keys the call passes after the queue's own, a
// queue no worker drains; "drained", as "other" but to a new queue each
// call, as a target a worker keeps empty finds it (its ready list gone,
// its hashes small), the target's keys created by the call; "backlog", as
// "other" but to a queue whose ready list holds the wake backlog
// (WakeBacklog ids a follow-up of a call) from the start, as a target
// whose workers fall behind: no call wakes its sleepers (§5); and, only
// when LEAN_BENCH_ONLY names it, "big", as "other" but to a queue that
// holds 100,000 messages from the start (messages, udts and mids-ready
// filled as that many enqueues leave them; bigFill), the target a long
// run leaves undrained: past the wake backlog too. The
// variants run in interleaved rounds; each reports the median of its
// rounds' µs of Redis per message (EVALSHA's usec in INFO commandstats),
// or, with LEAN_BENCH_ADDR and LEAN_BENCH_PID naming a redis-server under
// callgrind (as BenchmarkPollKeySets takes them), its instructions per
// message, which a busy machine does not blur. The calls go through Poll,
// as a worker's do: the lean key set, the target's keys appended.
// Run: go test -run '^$' -bench PollFollowUps -benchtime 1x .
//
// Where a follow-up's instructions go (callgrind, 300 calls of 8, before
// followups.lua's flat tables; own / other, over plain's ~210k): the
// writes of flush ~20k / ~29k, parsing (in_script.check) ~9k / ~10k,
// gathering (hand_off) ~3.4k / ~3.8k, the rest ~10k / ~13k, of which the
// lean-followups composition itself ~3k (plain's calls run on it) and
// the target's eight keys ~3k (a call's per-call costs halve at the ~16
// messages a call of BenchmarkHandoff). Measured by cutting each part
// out of the script in turn.
//
// Later (1000 calls of 8, medians of LEAN_BENCH_ROUNDS): a script's cost
// moves by 1-2k a message from one run of the benchmark to the next on
// one server (the second run after a FLUSHALL tends to be lower), so
// compare a change in one run, its composition given by
// LEAN_BENCH_ALT_FOLLOWUPS to "-alt" variants beside the plain ones, and
// never run two benchmarks against one server under callgrind at once
// (each flushes the other's keys). So measured: the call's 'S' records
// parsed under one pcall instead of one each, -0.3k own / -0.2k other
// (not kept). Measured across runs, within that noise: HMGET skipped
// (as HSET's answer could; an id held would be overwritten, not done),
// under 1k; followups.lua's functions made methods naming no local of
// an earlier part, ~0.3k at 2000 calls (not kept), so what plain pays
// on the lean-followups composition (~4k) is not the walk of their
// upvalues. In one run, past the wake backlog ("backlog") a call skips
// the target's move_sentinel: ~0.8k a message under "other".
//
// Later still (300 calls of 8, 3 rounds, the change in one run as an
// "-alt" variant; "plain-alt" runs plain's calls on the alt composition,
// to see what the composition costs a call that carries no follow-ups):
// the follow-ups gathered by target as in_script.check parses them
// (hand_off only marks a recorded success's) instead of one table per
// outcome copied by target at its success, -1.4k other / -2.9k own,
// -3.4k other in a second run; at LEAN_BENCH_BATCH=16 (200 calls, 2
// rounds), +1.3k other and +0.8k backlog, within the noise (kept: no
// more code than before). What plain pays on the lean-followups composition, +4.3k and
// +5.6k in two runs, follows followups.lua's functions: none of it
// without them (the in_script table alone, -0.3k), +2.3k with their
// bodies emptied, +3.0k with the file's body in one function of its own
// (its main-chunk constants out of the main chunk; not kept), and
// "other" +2.0k with in_script.field_at and fields left out (struct
// present): within the noise, so not the closures alone. Not done:
// the follow-ups' fields as ARGV entries of their own instead of one
// record. A stub that skips the unpack altogether saves ~6k a message
// (own and other), but an EVALSHA argument costs Redis ~1.7k
// instructions at 50 bytes and ~2.3k at 100 (2,000 calls of
// "return 1" through redis-cli --pipe, 40 arguments against none), so
// the five or more a follow-up would add cost more than that.
//
// Later again (300 calls of 8, 2 rounds, the old composition as the
// "-alt" variant), by function (callgrind_annotate of each variant's
// dump; the Debian redis-server is stripped, but Lua's API and Redis's
// exported functions keep their names and the rest its addresses, whose
// callers tell them apart): most of a follow-up's cost was Lua, not
// Redis's commands. "own" over plain, a message: the commands the script
// runs (scriptCall) 5.0k, struct.unpack 5.8k (6 strings pushed, 13
// format items), table sets 8.5k of which rehashes 3.5k (13.75 a message
// against plain's 7.25): Lua 5.1 assigns a multiple assignment from its
// last target, so "fs[m+1], ..., fs[m+5] = ..." put each follow-up past
// the array's end into the hash part and rebuilt the table. And the
// composition's fixed cost was mostly upvalues: each one a closure binds
// walks the list of those bound before it (luaF_findupval; ~100 open in
// this composition, a few hundred instructions each; plain's own calls
// bind ~266 a call, ~7.4k a message at 8 a call), followups.lua's 24
// ~1.1k a message. With its functions naming only in_script (bound
// last) and its tables filled in ascending order, the usual call's
// follow-ups written from the tables the parse filled: own 245.9k ->
// 238.6k and 244.4k -> 236.1k, other 255.1k -> 248.0k and 255.0k ->
// 248.0k (plain 207.3k and 201.4k in the same rounds); plain's calls on
// the composition +3.5k over dequeue-lean, findupval +0.08k of it. What
// "own" still adds (second round, 236.1k against 201.4k): the script's
// commands 4.9k, struct.unpack under pcall 5.7k, table sets 4.9k (of
// which rehashes 2.0k: the HMGET's answer, the gathered tables' growth),
// luaS_newlstr 3.4k (the record's ARGV string, the id's and the
// content's), the rest Lua's own instructions. "other" adds ~12k more,
// of which ~6.8k is lpFind: the target's udts is a listpack until 512
// entries (hash-max-listpack-entries here), searched at each HSET, which
// a long run or a drained target does not pay (in BenchmarkHandoff the
// first 512 of 20,000). At LEAN_BENCH_BATCH=16 (200 calls, 2 rounds):
// own 212.2k -> 204.0k, other 219.9k -> 215.7k and 217.6k -> 211.7k
// (plain ~174k). Then, in one run each at 8 and at 16 a call, the
// gathered tables found by the record's own target name (the empty one included)
// and the call's order holding them: -1.0k to +1.7k a message, noise
// (not kept). Lua's GC (luaC_step) is ~1.2k of "own"'s and ~1.8k of
// "other"'s added cost. Not done: a record of its own kind for the usual
// follow-up (target and id after their lengths, the content the rest,
// read by one string.byte and string.sub each instead of struct.unpack
// under pcall): 5.3k against 6.5k instructions a record in a loop of
// 20,000 in one EVALSHA (callgrind; the loop alone 85), so ~1.2k a
// message for a new record kind in the client, the script and §22. A
// call of a C function from Lua costs Redis ~700 instructions even when
// it does nothing (string.sub of one byte, 698), so what is left to
// save lies in the calls and strings a follow-up makes, not in parsing.
//
// Does a follow-up cost more as its target grows (issue 20:
// BenchmarkHandoff's followup/plain msgs/s was read as 0.83x-0.84x at
// 20,000 messages and 0.78x at 100,000, put down to the undrained
// target's 100,000 entries)? Not in instructions: at 16 a call (200
// calls, 2 rounds) plain 172.1k, other 209.8k, big 203.1k a message (the
// big target's hashes are hashtables, not the listpacks a small target
// searches at each HSET, and past the backlog nobody is woken). End to
// end, Redis itself under callgrind (a redis-server on PATH that runs
// valgrind --hz 1; the count reset once the queue is filled, dumped once
// every follow-up is in; ~16.4 messages a call): followup 216.2k a
// message at 20,000 and 215.6k at 100,000, plain 186.2k and 183.3k
// (1.16x and 1.18x). With --cache-sim=yes at 20,000 a follow-up adds ~100
// D1 read misses, ~40 D1 write misses and ~6 LL misses to plain's ~350,
// ~130 and ~4 a message, so its share of Redis's time is larger than of
// its instructions (Redis CPU a message, timed: ~1.25x-1.3x plain's).
// Timed with Redis's CPU read every 50 ms, a run's CPU a message is flat
// across its fifths in either mode, and Redis takes ~0.04 minor faults a
// follow-up. In alternated timed pairs (a shared machine, load 2-4) the
// msgs/s ratio kept its gap (medians 0.86x at 20,000, 0.79x at 100,000)
// while Redis's CPU a message did not (plain/followup 0.77x and 0.76x;
// Redis's and the client's together 0.81x and 0.80x): what differs is
// the part of a short run (~0.4-0.6 s) that is not spent a message, in
// both modes: 5-60 ms from the worker's start to its first handling,
// and a slower first fifth. Where a follow-up's ~30k go end to end (by
// function, 100,000 messages): Lua's VM +6.0k, interning strings (luaS_newlstr, which
// Redis's Lua hashes over every byte: the record, its id, its content)
// +4.9k, Lua's tables ~+4k, struct.unpack ~+2.0k, the allocator ~+2.5k,
// siphash (the target's hashes) +1.5k, Lua's GC +0.7k. At 16 a call the
// lean-followups composition costs a call without follow-ups 1.9k a
// message over dequeue-lean (plain-alt 173.8k, plain 171.9k), and the
// HMGET that finds held ids 1.4k (other 208.3k, without it 206.8k; kept:
// without it a held id's content would be overwritten). The records'
// kind read by the one unpack (no string.byte call for it) and the last
// target's gathered table kept for the next follow-up: other 209.8k ->
// 208.3k, own 201.0k -> 199.4k (2 rounds, the old composition as the
// "-alt" variants).
//
// The block (§22, "The block"; the usual follow-up's id and content as
// two arguments of the call, its success's field a mark), against the
// records it replaces, at 16 a call (1000 calls, 2 rounds each, one
// server under callgrind, the two commits' binaries run in turn twice):
// other 194.5k-194.8k -> 186.2k-186.3k, own 190.4k-190.5k -> 182.7k-182.8k
// (plain 162.0k-162.9k in both): a follow-up's cost over a plain success
// 32.3k -> 24.0k (other) and 28.0k -> 20.6k (own). What it spares: the
// record's struct.unpack and the strings it cuts (the id and the content
// made again), and the tables the parse filled: a target's contents go to
// HSET as they stand in ARGV, and udts' pairs and the ids are made at
// their size by a constructor over ARGV. Timed (no callgrind, LEAN_BENCH_ONLY
// plain,drained,other, 6 invocations of each commit in turn on a shared
// machine), "drained" costs over plain a median 5.25 -> 3.70 µs a message
// (1.287x -> 1.228x plain's), "other" 4.75 -> 4.73 µs.
func BenchmarkPollFollowUps(b *testing.B) {
	calls, rounds := 1000, 5
	s, pid := costServer(b)
	if pid != "" {
		calls, rounds = 1000, 1
		if n, err := strconv.Atoi(os.Getenv("LEAN_BENCH_ROUNDS")); err == nil && n > 0 {
			rounds = n
		}
	}
	if n, err := strconv.Atoi(os.Getenv("LEAN_BENCH_CALLS")); err == nil && n > 10 {
		calls = n
	}
	// LEAN_BENCH_ALT names a composed dequeue-lean of this commit's
	// arguments, run instead of the lean script by every variant: a change
	// tried before it is made.
	if alt := os.Getenv("LEAN_BENCH_ALT"); alt != "" {
		src, err := os.ReadFile(alt)
		require.NoError(b, err)
		saved := dequeueLeanScript
		dequeueLeanScript = redis.NewScript(string(src))
		b.Cleanup(func() { dequeueLeanScript = saved })
	}
	// LEAN_BENCH_ALT_FOLLOWUPS does the same for dequeue-lean-followups,
	// which the variants with follow-ups run, but only for the variants
	// named with "-alt" after their name ("own-alt": "own" on it): in
	// LEAN_BENCH_ONLY beside the plain ones, the change is measured in
	// the same interleaved rounds (runs of one script differ by ~1-2k a
	// message from one server run to the next).
	base, alt := dequeueLeanFollowUpsScript, dequeueLeanFollowUpsScript
	if f := os.Getenv("LEAN_BENCH_ALT_FOLLOWUPS"); f != "" {
		src, err := os.ReadFile(f)
		require.NoError(b, err)
		alt = redis.NewScript(string(src))
		b.Cleanup(func() { dequeueLeanFollowUpsScript = base })
	}
	batch := 8
	if n, err := strconv.Atoi(os.Getenv("LEAN_BENCH_BATCH")); err == nil && n > 0 {
		batch = n
	}
	ctx := context.Background()
	variants := []string{"plain", "own", "other", "drained", "backlog"}
	if only := os.Getenv("LEAN_BENCH_ONLY"); only != "" {
		variants = regexp.MustCompile(`,`).Split(only, -1)
	}
	payload := make([]byte, 100)
	run := randomToken() // (a server under callgrind keeps its keys between runs)
	got := map[string][]float64{}
	for round := range rounds {
		for _, name := range variants {
			v, isAlt := strings.CutSuffix(name, "-alt")
			dequeueLeanFollowUpsScript = base
			lean := dequeueLeanScript
			if isAlt {
				dequeueLeanFollowUpsScript = alt
				if v == "plain" { // (plain's calls carry no follow-ups: "plain-alt" runs them on alt)
					dequeueLeanScript = alt
				}
			}
			q := fmt.Sprintf("bench:%s:%s:%d", run, name, round)
			target := ""
			if v == "other" || v == "backlog" || v == "big" {
				target = keys.Key(q+":next", false, keys.Messages)
			}
			if v == "backlog" {
				ready := keys.Key(q+":next", false, keys.MidsReady)
				for i := 0; i < WakeBacklog*batch; i += 1000 {
					ids := make([]any, min(1000, WakeBacklog*batch-i))
					for j := range ids {
						ids[j] = "r" + strconv.Itoa(i+j)
					}
					require.NoError(b, s.RDB.(*redis.Client).RPush(ctx, ready, ids...).Err())
				}
			}
			if v == "big" {
				bigFill(b, s, q+":next", 100000, payload)
			}
			for i := 0; i < calls*batch; i += 500 {
				msgs := make([]EnqueueMessage, 500)
				for j := range msgs {
					msgs[j] = EnqueueMessage{ID: strconv.Itoa(i + j), Data: payload}
				}
				a := Enqueue(ctx, s.RDB, s.Keys(q), EnqueueCall{Token: randomToken(), Keep: time.Minute, Messages: msgs})
				require.NoError(b, a.Err)
			}
			require.NoError(b, s.RDB.(*redis.Client).ConfigResetStat(ctx).Err())
			a := PollArgs{LockTime: time.Minute, MaxSteps: batch, MaxHandles: batch, Poller: randomToken(), Held: 0, Lean: &Lean{}}
			a.Sleeps = [5]time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second}
			handled := 0
			for i := range calls {
				if i == 10 && pid != "" {
					callgrindControl(b, "-z", pid)
				}
				if v == "drained" {
					target = keys.Key(q+":next:"+strconv.Itoa(i), false, keys.Messages)
				}
				a.Seq++
				reply, err := Poll(ctx, s.RDB, s.Keys(q), a)
				require.NoError(b, err)
				a.Confirmed = a.Seq
				a.Completions = a.Completions[:0]
				for _, st := range reply.Steps {
					if st.Kind != StepHandle {
						continue
					}
					c := Completion{ID: st.ID, LockedUntil: st.LockedUntil, Outcome: OutcomeSuccess}
					if v != "plain" {
						c.FollowUps = EncodeInScript([]InScriptFollowUp{{Target: target, ID: st.ID + "/" + strconv.FormatInt(st.LockedUntil, 10) + "/0", Data: payload}}, nil)
					}
					a.Completions = append(a.Completions, c)
					handled++
				}
			}
			require.Equal(b, calls*batch, handled)
			require.False(b, a.Lean.Full(), "follow-ups in the script keep the call lean")
			dequeueLeanScript = lean
			if pid != "" {
				callgrindControl(b, "-d", pid)
				got[name] = append(got[name], float64(callgrindTotal(b, pid))/float64((calls-10)*batch))
				continue
			}
			info, err := s.RDB.(*redis.Client).Info(ctx, "commandstats").Result()
			require.NoError(b, err)
			m := usecOf(info, "evalsha")
			require.NotZero(b, m[0], info)
			got[name] = append(got[name], m[1]/m[0]/float64(batch))
		}
	}
	reportMedians(b, got, variants, "msg", pid)
}

// bigFill puts n messages of data into queue's messages, udts and
// mids-ready, as n enqueues would, in pipelines of 1000.
func bigFill(b *testing.B, s *queuetest.Server, queue string, n int, data []byte) {
	ctx := context.Background()
	rdb := s.RDB.(*redis.Client)
	for i := 0; i < n; i += 1000 {
		m := min(1000, n-i)
		msgs, udts, ids := make([]any, 0, 2*m), make([]any, 0, 2*m), make([]any, 0, m)
		for j := range m {
			id := "big" + strconv.Itoa(i+j)
			msgs = append(msgs, id, data)
			udts = append(udts, id, "1700000000000")
			ids = append(ids, id)
		}
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, keys.Key(queue, false, keys.Messages), msgs...)
			p.HSet(ctx, keys.Key(queue, false, keys.UDTs), udts...)
			p.LPush(ctx, keys.Key(queue, false, keys.MidsReady), ids...)
			return nil
		})
		require.NoError(b, err)
	}
}

// BenchmarkPollArgs measures what the client spends building a poll
// call's arguments (on the poller's path, between a reply and the next
// call) for 20 successes with one follow-up each to another queue: as
// marks and a block (§22, "The block"), and as the records themselves.
func BenchmarkPollArgs(b *testing.B) {
	own := make([]string, LeanKeys)
	own[keys.Messages] = "q:messages"
	cs := make([]Completion, 20)
	for i := range cs {
		cs[i] = Completion{ID: fmt.Sprint(i), LockedUntil: 1765000000000, Outcome: OutcomeSuccess,
			FollowUps: EncodeInScript([]InScriptFollowUp{{Target: "t:messages",
				ID: fmt.Sprintf("%024d/1765000000000/0", i), Data: make([]byte, 100)}}, nil)}
	}
	ks, first := withInScriptKeys(own, cs)
	a := PollArgs{Completions: cs}
	for _, mode := range []string{"block", "records"} {
		b.Run(mode, func(b *testing.B) {
			use := ks
			if mode == "records" {
				use = nil // (argv sends the records as they are)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = a.argv(use, first)
			}
		})
	}
}

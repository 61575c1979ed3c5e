package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Policy is a message's own policy (docs/protocol.md §14), kept in the
// queue's policy hash and answered with the message when a poll hands it
// out. A zero field leaves the worker's setting.
type Policy struct {
	// MaxAttempts bounds the hand-outs of a failing message (negative:
	// no bound; 0: the worker's).
	MaxAttempts int
	// Backoff is the wait before a retry after a failure; a zero Kind
	// leaves the worker's RetryBackoff.
	Backoff BackoffSpec
	// Timeout is a hard bound on one handling; 0 for none.
	Timeout time.Duration
	// UniqueFor is the dedupe window kept after the message's success or
	// death; 0 for none.
	UniqueFor time.Duration
	// Batch names the batch the message is a member of (docs/protocol.md
	// §22), as BatchRef builds it: its final outcome ticks the batch. ""
	// for none. Encoded as field 8, only when set.
	Batch string
}

// BackoffSpec is a retry backoff that can travel: a kind and its numbers,
// since a Go function cannot.
type BackoffSpec struct {
	// Kind is "fixed" or "exp"; empty for none.
	Kind string
	// Base is the fixed wait, or the wait after the first failure of an
	// exponential backoff, doubled per attempt.
	Base time.Duration
	// Max caps an exponential backoff (0: no cap).
	Max time.Duration
	// Jitter is the part of the wait, from 0 to 1, taken off at random.
	Jitter float64
}

// IsZero tells whether p sets nothing.
func (p Policy) IsZero() bool { return p == Policy{} }

// policyVersion starts every encoded policy, so that a later layout can be
// told from this one.
const policyVersion = "p1"

// EncodePolicy encodes p as the policy hash stores it (without the tag the
// script puts in front): its fields as text, each after its length in four
// little-endian bytes, as dead letters are (§11).
func EncodePolicy(p Policy) []byte {
	fields := []string{
		policyVersion,
		strconv.Itoa(p.MaxAttempts),
		p.Backoff.Kind,
		strconv.FormatInt(MS(p.Backoff.Base), 10),
		strconv.FormatInt(MS(p.Backoff.Max), 10),
		strconv.FormatFloat(p.Backoff.Jitter, 'g', -1, 64),
		strconv.FormatInt(MS(p.Timeout), 10),
		strconv.FormatInt(MS(p.UniqueFor), 10),
	}
	if p.Batch != "" {
		fields = append(fields, p.Batch)
	}
	var b []byte
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// DecodePolicy decodes what EncodePolicy wrote. Fields a later version
// adds after these are ignored.
func DecodePolicy(b []byte) (Policy, error) {
	var fields []string
	for len(b) > 0 {
		if len(b) < 4 {
			return Policy{}, fmt.Errorf("%w: policy truncated", ErrUnexpectedReply)
		}
		n := binary.LittleEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return Policy{}, fmt.Errorf("%w: policy truncated", ErrUnexpectedReply)
		}
		fields = append(fields, string(b[4:4+n]))
		b = b[4+n:]
	}
	if len(fields) < 8 || fields[0] != policyVersion {
		return Policy{}, fmt.Errorf("%w: policy of an unknown layout", ErrUnexpectedReply)
	}
	var p Policy
	var err error
	num := func(s string) int64 {
		v, e := strconv.ParseInt(s, 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%w: policy field %q", ErrUnexpectedReply, s)
		}
		return v
	}
	p.MaxAttempts = int(num(fields[1]))
	p.Backoff.Kind = fields[2]
	p.Backoff.Base = time.Duration(num(fields[3])) * time.Millisecond
	p.Backoff.Max = time.Duration(num(fields[4])) * time.Millisecond
	if p.Backoff.Jitter, _ = strconv.ParseFloat(fields[5], 64); math.IsNaN(p.Backoff.Jitter) {
		p.Backoff.Jitter = 0
	}
	p.Timeout = time.Duration(num(fields[6])) * time.Millisecond
	p.UniqueFor = time.Duration(num(fields[7])) * time.Millisecond
	if len(fields) > 8 {
		p.Batch = fields[8]
	}
	return p, err
}

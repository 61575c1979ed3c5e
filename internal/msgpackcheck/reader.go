package msgpackcheck

import (
	"errors"
	"fmt"
	"io"
)

// Reader reads data for a vmihailenco/msgpack decoder, and refuses to hand
// out, one byte at a time, the first byte of an ext payload listed by
// [Scan]. That decoder reads the first byte of every value alone
// (ReadByte), and an opaque payload in one piece (Read): a payload's first
// byte is read alone only when the payload is about to be read as
// MessagePack, and for a listed payload that read fails here, before
// anything is sized from its bytes.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	data []byte
	pos  int
	exts []int // from Scan, increasing
	next int   // index in exts of the first offset at or after pos
}

var errUnreadAtStart = errors.New("msgpackcheck: UnreadByte at the start of data")

// NewReader returns a Reader of data, which must have passed [Scan], and
// exts, the offsets Scan returned.
func NewReader(data []byte, exts []int) *Reader {
	return &Reader{data: data, exts: exts}
}

// Read reads up to len(p) bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.pos:])
	r.pos += n
	return n, nil
}

// ReadByte reads one byte, and fails with an [*Error] at the first byte of
// an ext payload listed by Scan.
func (r *Reader) ReadByte() (byte, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	for r.next < len(r.exts) && r.exts[r.next] < r.pos {
		r.next++
	}
	if r.next < len(r.exts) && r.exts[r.next] == r.pos {
		return 0, &Error{Offset: r.pos, Reason: fmt.Sprintf(
			"an ext payload that is not one well-formed value is read as MessagePack: its first byte reads as %s", kindName(r.data[r.pos]))}
	}
	r.pos++
	return r.data[r.pos-1], nil
}

// UnreadByte steps back over the last byte read.
func (r *Reader) UnreadByte() error {
	if r.pos == 0 {
		return errUnreadAtStart
	}
	r.pos--
	for r.next > 0 && r.exts[r.next-1] >= r.pos {
		r.next--
	}
	return nil
}

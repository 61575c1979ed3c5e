package msgpackcheck

import (
	"errors"
	"fmt"
	"io"
)

// internedString is the ext type vmihailenco/msgpack gives a reference to
// a string met before in the same data (a struct field tagged ",intern").
const internedString = 0x80

// Reader reads data for a vmihailenco/msgpack decoder, and refuses to let
// it start reading an ext payload listed by [Scan] as MessagePack. That
// decoder reads the first byte of every value alone (ReadByte), and an
// opaque payload in one piece (Read): it reads a payload's first byte
// alone only to read the payload as MessagePack, and for a listed payload
// that read fails here, before anything is sized from its bytes.
//
// One exception: the decoder reads the one-byte index of an interned
// string alone too. A Reader hands out the one-byte payload of an ext of
// that type, but then insists that the next read be the first byte of the
// value after the ext: whatever the decoder made of the byte, it reads on
// from a value Scan checked, and never takes a length from the bytes that
// follow.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	data  []byte
	pos   int
	exts  []Payload // from Scan, by offset
	next  int       // index in exts of the first payload at or after pos
	after int       // if not -1, the offset that must be read next, by ReadByte
}

var errUnreadAtStart = errors.New("msgpackcheck: UnreadByte at the start of data")

// NewReader returns a Reader of data, which must have passed [Scan], and
// exts, the payloads Scan returned.
func NewReader(data []byte, exts []Payload) *Reader {
	return &Reader{data: data, exts: exts, after: -1}
}

// Read reads up to len(p) bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	if r.pos == r.after {
		return 0, &Error{Offset: r.pos, Reason: "the one-byte payload of an interned-string ext is read as the start of a longer value"}
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
	for r.next < len(r.exts) && r.exts[r.next].Offset < r.pos {
		r.next++
	}
	switch {
	case r.next < len(r.exts) && r.exts[r.next].Offset == r.pos:
		p := r.exts[r.next]
		if p.Type != internedString || p.Len != 1 {
			return 0, &Error{Offset: r.pos, Reason: fmt.Sprintf(
				"an ext payload that is not one well-formed value is read as MessagePack: its first byte reads as %s", kindName(r.data[r.pos]))}
		}
		r.after = r.pos + 1
	case r.pos == r.after:
		r.after = -1
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
	for r.next > 0 && r.exts[r.next-1].Offset >= r.pos {
		r.next--
	}
	return nil
}

// Package msgpackcheck validates the shape of MessagePack data before a
// decoder sees it.
//
// Decoders such as vmihailenco/msgpack size their allocations from the
// lengths a value declares: a five-byte array32 header that claims 2^32-1
// elements makes them ask for 64 GiB, and the process dies of it, out of
// reach of recover. [Check] walks the encoding once, without decoding it,
// and refuses any value whose declared lengths are not backed by bytes that
// are really there. Once data has passed, every element a decoder will make
// room for is present in data, so what it allocates is bounded by len(data)
// times the size of one decoded element.
//
// Check also refuses bytes after the first value. A decoder that stops at
// the end of the first value reads the JSON text {"a":1} as the number 123
// and Nippy data ("NPY...") as 78; Check names those formats in its error
// instead.
//
// Ext payloads are opaque bytes, yet that decoder reads some of them as
// MessagePack. [Scan] checks each payload as a value and lists those that
// are not one; a [Reader] hands data to the decoder and refuses to let it
// start reading a listed payload as MessagePack.
package msgpackcheck

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxDepth is how deeply arrays and maps may nest in a value Check accepts:
// a top-level array is at depth 1, an array inside it at depth 2.
//
// Decoders recurse once per level, and vmihailenco/msgpack spends a few
// hundred bytes of goroutine stack on each: five megabytes of nested
// one-element arrays (0x91 0x91 ... 0xc0) outgrow Go's 1 GB stack limit,
// and that is a fatal error, not a panic. Real messages nest a handful of
// levels; 512 leaves room for deep documents while holding a decoder's
// stack to a few hundred kilobytes, and its allocations at that depth (one
// map per two bytes at worst) to a couple of hundred kilobytes too.
const MaxDepth = 512

// Error reports why data is not exactly one well-formed MessagePack value.
type Error struct {
	// Offset is the byte offset in data at which the problem was found.
	Offset int
	// Reason says what is wrong, without the offset.
	Reason string
	// Hint, when not empty, names the format data seems to be in instead,
	// such as "Nippy (Carmine's default encoding)", "JSON" or "text".
	Hint string
}

// Error returns the reason, the offset and the hint in one line.
func (e *Error) Error() string {
	s := fmt.Sprintf("msgpack: %s (at offset %d)", e.Reason, e.Offset)
	if e.Hint != "" {
		s += "; this looks like " + e.Hint
	}
	return s
}

// Check reports whether data holds exactly one well-formed MessagePack
// value: every declared length of a str, bin or ext is covered by the bytes
// that follow, every element an array or map declares is present, nesting
// is at most [MaxDepth] deep, no byte is the never-used 0xc1, and nothing
// follows the value. It returns nil or an [*Error].
//
// Check reads data once, in O(len(data)) time (ext payloads twice), and
// allocates nothing on the heap unless nesting goes past 32 levels, and
// then only O(depth). It does not look inside strings (which need not be
// UTF-8) nor check that ext payloads suit their type; a decoder reports
// those.
func Check(data []byte) error {
	_, err := Scan(data)
	return err
}

// Scan is [Check], and also returns, in increasing order of offset, the
// ext payloads in data that a decoder must not read as MessagePack; nil
// when there are none. A decode of data with some must read it through a
// [Reader].
//
// An ext payload is opaque bytes (a time value's payload is its seconds and
// nanoseconds), yet vmihailenco/msgpack reads some as MessagePack: when it
// expects a map (map[string]any included) and meets an ext, it skips the
// ext's header and reads the payload as the map, values and all; and an
// ext type registered with a decoder of its own may read its payload with
// the Decoder. A payload that is itself exactly one well-formed value (at
// the depth of its ext) is safe to read so, and Scan checks it as it
// checks data; any other payload is listed, and so is every ext inside a
// payload (those are not checked: checking them in turn would cost time in
// proportion to how deeply exts nest). Unguarded, a listed payload read as
// a map sizes the map from whatever its bytes say: [time, 0] encoded as
// 92 d6 ff df ff ff ff 00, a valid time whose seconds begin with 0xdf,
// asks for a map of 4,294,967,040 entries.
func Scan(data []byte) (exts []Payload, err error) {
	if p, ok := walk(data, 0, 0, &exts, false); !ok {
		e := p.describe()
		e.Hint = guessFormat(data)
		return nil, e
	}
	return exts, nil
}

// Payload is an ext payload that [Scan] lists.
type Payload struct {
	// Offset is where the payload starts in data, after the ext's header.
	Offset int
	// Len is its length in bytes, at least 1.
	Len int
	// Type is the ext's type byte.
	Type byte
}

// The problems walk finds.
const (
	problemTrailing = iota // n bytes after the value
	problemEnd             // data ends where owed values were expected
	problemInvalid         // the byte 0xc1
	problemHeader          // a header's n length bytes are cut, rest remain
	problemTypeByte        // an ext's type byte is missing
	problemPayload         // a payload of n bytes is cut, rest remain
	problemElements        // a container declares n, more than rest bytes
	problemOwed            // a container declares n, more than rest bytes with owed others
	problemDepth           // nesting past MaxDepth
)

// problem is what walk found wrong, in plain values: a walk of an ext
// payload, which fails as a rule, must not allocate an error to throw
// away. Scan describes the problem it reports.
type problem struct {
	what   int
	offset int    // where the value at fault starts
	c      byte   // its first byte
	n      uint64 // a count, as each problem says
	rest   int
	owed   int
}

// describe turns p into an Error with its reason.
func (p problem) describe() *Error {
	name := kindName(p.c)
	var reason string
	switch p.what {
	case problemTrailing:
		reason = plural(p.n, "trailing byte") + " after the first MessagePack value"
	case problemEnd:
		reason = "data ends where a value was expected"
		if p.owed > 1 {
			reason = fmt.Sprintf("data ends where %d more values were expected", p.owed)
		}
	case problemInvalid:
		reason = "byte 0xc1 is never used in MessagePack"
	case problemHeader:
		reason = fmt.Sprintf("%s header needs %d length bytes, but %s", name, p.n, remain(p.rest))
	case problemTypeByte:
		reason = fmt.Sprintf("%s header needs a type byte, but no bytes remain", name)
	case problemPayload:
		switch formats[p.c].kind {
		case kindFixed:
			reason = fmt.Sprintf("%s needs %d bytes after its first, but %s", name, p.n, remain(p.rest))
		case kindFixExt:
			reason = fmt.Sprintf("%s needs %s after its type byte, but %s", name, plural(p.n, "byte"), remain(p.rest))
		case kindExt:
			reason = fmt.Sprintf("%s declares %s after its type byte, but %s", name, plural(p.n, "byte"), remain(p.rest))
		default:
			reason = fmt.Sprintf("%s declares %s, but %s", name, plural(p.n, "byte"), remain(p.rest))
		}
	case problemElements:
		reason = fmt.Sprintf("%s declares %s, but %s to hold them", name, elements(formats[p.c].kind, p.n), remain(p.rest))
	case problemOwed:
		reason = fmt.Sprintf("%s declares %s; with the %d values still to come around it, that is more than the %d bytes that remain could hold",
			name, elements(formats[p.c].kind, p.n), p.owed, p.rest)
	default:
		reason = fmt.Sprintf("arrays and maps nest deeper than %d levels", MaxDepth)
	}
	return &Error{Offset: p.offset, Reason: reason}
}

// walk checks that data is exactly one value, reporting the first problem
// otherwise. data starts at offset base of the whole input, inside depth
// containers; ext payloads that must not be read as MessagePack are
// appended to exts. A nested walk (of an ext payload) lists the exts it
// meets without walking their payloads.
//
// The walk keeps no stack of values, only of counts: left is how many
// values the innermost open container still holds, and outer the same
// count for each container around it (the bottom entry stands for the top
// level, which holds one value). owed is the sum of all those counts, the
// number of values still to come; as each value takes at least one byte,
// owed may never exceed the bytes left, which stops a header declaring more
// elements than data could hold as soon as it is read.
func walk(data []byte, base, depth int, exts *[]Payload, nested bool) (problem, bool) {
	var room [32]int // outer's storage while nesting is shallow
	outer := room[:0]
	left := 1
	owed := 1
	i := 0
	for {
		for left == 0 {
			if len(outer) == 0 {
				if i < len(data) {
					return problem{what: problemTrailing, offset: base + i, n: uint64(len(data) - i)}, false
				}
				return problem{}, true
			}
			left = outer[len(outer)-1]
			outer = outer[:len(outer)-1]
		}
		if i >= len(data) {
			return problem{what: problemEnd, offset: base + i, owed: owed}, false
		}
		left--
		owed--
		start := i
		c := data[i]
		f := formats[c]
		i++
		count := uint64(f.count)
		if f.width > 0 {
			if len(data)-i < int(f.width) {
				return problem{what: problemHeader, offset: base + start, c: c, n: uint64(f.width), rest: len(data) - i}, false
			}
			count = readUint(data[i:], f.width)
			i += int(f.width)
		}
		switch f.kind {
		case kindFixed, kindBytes:
			if uint64(len(data)-i) < count {
				return problem{what: problemPayload, offset: base + start, c: c, n: count, rest: len(data) - i}, false
			}
			i += int(count)
		case kindExt, kindFixExt:
			if i == len(data) {
				return problem{what: problemTypeByte, offset: base + start, c: c}, false
			}
			typ := data[i]
			i++
			if uint64(len(data)-i) < count {
				return problem{what: problemPayload, offset: base + start, c: c, n: count, rest: len(data) - i}, false
			}
			if count > 0 {
				payload := data[i : i+int(count)]
				listed := Payload{Offset: base + i, Len: int(count), Type: typ}
				mark := len(*exts)
				if nested {
					*exts = append(*exts, listed)
				} else if _, ok := walk(payload, base+i, depth+len(outer), exts, true); !ok {
					*exts = append((*exts)[:mark], listed)
				}
			}
			i += int(count)
		case kindInvalid:
			return problem{what: problemInvalid, offset: base + start, c: c}, false
		case kindArray, kindMap:
			n := count
			if f.kind == kindMap {
				n *= 2 // a key and a value per entry
			}
			if depth+len(outer) >= MaxDepth {
				return problem{what: problemDepth, offset: base + start, c: c}, false
			}
			if n == 0 {
				continue
			}
			rest := len(data) - i
			if n > uint64(rest) {
				return problem{what: problemElements, offset: base + start, c: c, n: count, rest: rest}, false
			}
			if uint64(owed)+n > uint64(rest) {
				return problem{what: problemOwed, offset: base + start, c: c, n: count, rest: rest, owed: owed}, false
			}
			outer = append(outer, left)
			left = int(n)
			owed += int(n)
		}
	}
}

// elements says how many elements an array or map declares, for errors.
func elements(kind uint8, count uint64) string {
	if kind == kindMap {
		return fmt.Sprintf("%s (%d keys and values)", plural(count, "entry"), 2*count)
	}
	return plural(count, "element")
}

// remain says how many bytes remain, for errors.
func remain(n int) string {
	switch n {
	case 0:
		return "no bytes remain"
	case 1:
		return "only 1 byte remains"
	}
	return fmt.Sprintf("only %d bytes remain", n)
}

// The kinds of first byte, by what follows it.
const (
	kindFixed   uint8 = iota // a payload of fixed size: scalars
	kindBytes                // str or bin: count bytes
	kindExt                  // ext: a type byte, then count bytes
	kindFixExt               // fixext: a type byte, then count bytes
	kindArray                // count values
	kindMap                  // count key-value pairs
	kindInvalid              // 0xc1
)

// format describes what follows the first byte of a value: how many
// big-endian length bytes come next (width), or, when width is 0, the count
// itself (the payload size of a fixed kind, the elements of a fix type).
type format struct {
	kind, width, count uint8
}

// formats holds the format of every first byte, so that the walk looks one
// up instead of branching on ranges.
var formats = func() (t [256]format) {
	for c := range t {
		t[c] = classify(byte(c))
	}
	return t
}()

// classify tells the format of the first byte c of a value.
func classify(c byte) format {
	switch {
	case c <= 0x7f, c >= 0xe0: // positive and negative fixint
		return format{kindFixed, 0, 0}
	case c <= 0x8f:
		return format{kindMap, 0, c & 0x0f}
	case c <= 0x9f:
		return format{kindArray, 0, c & 0x0f}
	case c <= 0xbf:
		return format{kindBytes, 0, c & 0x1f}
	}
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return format{kindFixed, 0, 0}
	case 0xc1:
		return format{kindInvalid, 0, 0}
	case 0xc4, 0xd9: // bin8, str8
		return format{kindBytes, 1, 0}
	case 0xc5, 0xda: // bin16, str16
		return format{kindBytes, 2, 0}
	case 0xc6, 0xdb: // bin32, str32
		return format{kindBytes, 4, 0}
	case 0xc7:
		return format{kindExt, 1, 0}
	case 0xc8:
		return format{kindExt, 2, 0}
	case 0xc9:
		return format{kindExt, 4, 0}
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return format{kindFixed, 0, 4}
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return format{kindFixed, 0, 8}
	case 0xcc, 0xd0: // uint8, int8
		return format{kindFixed, 0, 1}
	case 0xcd, 0xd1: // uint16, int16
		return format{kindFixed, 0, 2}
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		return format{kindFixExt, 0, 1 << (c - 0xd4)}
	case 0xdc:
		return format{kindArray, 2, 0}
	case 0xdd:
		return format{kindArray, 4, 0}
	case 0xde:
		return format{kindMap, 2, 0}
	default: // 0xdf
		return format{kindMap, 4, 0}
	}
}

// readUint reads a big-endian length of width 1, 2 or 4 bytes.
func readUint(b []byte, width uint8) uint64 {
	switch width {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	default:
		return uint64(binary.BigEndian.Uint32(b))
	}
}

// kindName names the MessagePack type whose first byte is c, for errors.
func kindName(c byte) string {
	switch {
	case c <= 0x7f, c >= 0xe0:
		return "fixint"
	case c <= 0x8f:
		return "fixmap"
	case c <= 0x9f:
		return "fixarray"
	case c <= 0xbf:
		return "fixstr"
	}
	return [...]string{
		"nil", "0xc1", "false", "true", "bin8", "bin16", "bin32", "ext8",
		"ext16", "ext32", "float32", "float64", "uint8", "uint16", "uint32", "uint64",
		"int8", "int16", "int32", "int64", "fixext1", "fixext2", "fixext4", "fixext8",
		"fixext16", "str8", "str16", "str32", "array16", "array32", "map16", "map32",
	}[c-0xc0]
}

func plural(n uint64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	if unit == "entry" {
		return fmt.Sprintf("%d entries", n)
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// guessFormat names the format data seems to be in when it is not
// MessagePack, or returns "". It runs only on refused data.
func guessFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("NPY")) && len(data) >= 4:
		// Nippy's header: "NPY", then a byte of metadata.
		return "Nippy (Carmine's default encoding)"
	case looksLikeJSON(data):
		return "JSON"
	case looksLikeText(data):
		return "text"
	}
	return ""
}

// looksLikeJSON reports whether data is a JSON object or array; a bare
// JSON number or string is more likely plain text.
func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(data)
}

// looksLikeText reports whether data is non-empty UTF-8 made of printable
// characters and ordinary white space.
func looksLikeText(data []byte) bool {
	if len(data) == 0 || !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

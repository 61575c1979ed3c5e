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

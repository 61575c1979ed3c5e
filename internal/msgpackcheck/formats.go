package msgpackcheck

import "encoding/binary"

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

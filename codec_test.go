package mq

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hexBytes decodes hex written with spaces for reading.
func hexBytes(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// payload is a stored message a test feeds to the decode path.
type payload struct {
	name   string // also its message id in tests that enqueue it
	data   []byte
	reason string // part of the decode error expected
}

// hostilePayloads are the messages of issue 9 that made the default codec
// allocate from the lengths they declare, up to killing the process, and
// one that overflows the decoder's stack. They are safe to decode only
// through the check.
func hostilePayloads() []payload {
	return []payload{
		{"array32", hexBytes("dd ff ff ff ff"), "array32 declares 4294967295 elements, but no bytes remain to hold them (at offset 0)"},
		{"array32-in-map", hexBytes("81 a1 61 dd ff ff ff ff"), "array32 declares 4294967295 elements, but no bytes remain to hold them (at offset 3)"},
		{"bin32", hexBytes("c6 ff ff ff ff"), "bin32 declares 4294967295 bytes, but no bytes remain (at offset 0)"},
		{"str32", hexBytes("db ff ff ff ff"), "str32 declares 4294967295 bytes, but no bytes remain (at offset 0)"},
		{"map32", hexBytes("df ff ff ff ff"), "map32 declares 4294967295 entries (8589934590 keys and values), but no bytes remain to hold them (at offset 0)"},
		{"nested-array16", bytes.Repeat(hexBytes("dc ff ff"), 24000), "array16 declares 65535 elements; with the 65534 values still to come around it"},
		{"deep-arrays", append(bytes.Repeat([]byte{0x91}, 5<<20), 0xc0), "arrays and maps nest deeper than 512 levels (at offset 512)"},
	}
}

// extPayloads hide their danger in an ext payload, which msgpack reads as
// a map where it expects one (see msgpackcheck.Scan): a map whose value
// declares 2^32-1 elements, behind a map16 and behind a fixmap header; the
// map16 of 12,336 entries the fuzz test found; and a time whose payload
// reads as a map32 of 4,294,967,040 entries, the last length byte taken
// from the value after it (a valid time: it decodes as one).
func extPayloads() []payload {
	const reason = "an ext payload that is not one well-formed value is read as MessagePack: its first byte reads as "
	return []payload{
		{"ext-map16-of-array32", hexBytes("c7 09 05 de 00 01 a0 dd ff ff ff ff"), reason + "map16"},
		{"ext-fixmap-of-array32", hexBytes("c7 07 05 81 a0 dd ff ff ff ff"), reason + "fixmap"},
		{"ext-map16-fuzzed", append(hexBytes("c7 0c 30 de"), "00000000000"...), reason + "map16"},
		{"time-as-map32", hexBytes("d6 ff df ff ff ff"), reason + "map32"},
	}
}

// foreignPayloads are what a queue shared with Clojure services or written
// by hand holds: each starts with a byte that MessagePack reads as a small
// integer (78, 123, 104) and goes on.
func foreignPayloads() []payload {
	return []payload{
		// Nippy's header ("NPY" and a metadata byte), then a frozen value.
		{"nippy", []byte("NPY\x00i\x05hello"), "10 trailing bytes after the first MessagePack value (at offset 1); this looks like Nippy (Carmine's default encoding)"},
		{"json", []byte(`{"to":"ada@example.com"}`), "23 trailing bytes after the first MessagePack value (at offset 1); this looks like JSON"},
		{"text", []byte("hello"), "4 trailing bytes after the first MessagePack value (at offset 1); this looks like text"},
	}
}

// smallStruct is a typed decode target with a field of each common kind
// (no pointers: typed targets are bounded by their element sizes).
type smallStruct struct {
	ID    string         `msgpack:"id"`
	N     int64          `msgpack:"n"`
	F     float64        `msgpack:"f"`
	OK    bool           `msgpack:"ok"`
	Tags  []string       `msgpack:"tags"`
	Items []any          `msgpack:"items"`
	Meta  map[string]any `msgpack:"meta"`
	Blob  []byte         `msgpack:"blob"`
}

// decodeTargets make a fresh pointer for each kind of target a handler
// decodes into.
var decodeTargets = []struct {
	name string
	new  func() any
}{
	{"any", func() any { return new(any) }},
	{"map", func() any { return new(map[string]any) }},
	{"slice", func() any { return new([]any) }},
	{"maps", func() any { return new([]map[string]any) }},
	{"struct", func() any { return new(smallStruct) }},
	{"bytes", func() any { return new([]byte) }},
}

// TestDecodeForeignContent: Nippy, JSON and text are decode errors that
// say what the content looks like, whatever the target (issue 9, item 2).
func TestDecodeForeignContent(t *testing.T) {
	t.Parallel()
	for _, p := range foreignPayloads() {
		for _, target := range decodeTargets {
			v := target.new()
			err := decode(MsgpackCodec{}, p.data, v)
			assert.ErrorIs(t, err, ErrDecode, "%s into %s", p.name, target.name)
			assert.ErrorContains(t, err, p.reason, "%s into %s", p.name, target.name)
			assert.Zero(t, reflect.ValueOf(v).Elem().Interface(), "%s into %s: nothing decoded", p.name, target.name)
		}
	}
	err := decode(MsgpackCodec{}, []byte("hello"), new(any))
	assert.EqualError(t, err, "mq: cannot decode message: msgpack: 4 trailing bytes after the first MessagePack value (at offset 1); this looks like text")
}

// TestDecodeHostileContent: the payloads of issue 9, item 1, are decode
// errors that name the length that is not there, whatever the target.
func TestDecodeHostileContent(t *testing.T) {
	t.Parallel()
	for _, p := range hostilePayloads() {
		for _, target := range decodeTargets {
			err := decode(MsgpackCodec{}, p.data, target.new())
			assert.ErrorIs(t, err, ErrDecode, "%s into %s", p.name, target.name)
			assert.ErrorContains(t, err, p.reason, "%s into %s", p.name, target.name)
			var ce *msgpackcheck.Error
			assert.ErrorAs(t, err, &ce, "%s into %s", p.name, target.name)
		}
	}
}

// TestMsgpackCodecExtReadAsMap: a time whose payload begins with a map
// header decodes as a time, whatever the target around it, and is a
// decode error, not a preallocated map, where a map is expected.
func TestMsgpackCodecExtReadAsMap(t *testing.T) {
	t.Parallel()
	tm := time.Unix(1_700_000_000, 935_000_000) // encoded d7 ff de ...
	type withTime struct {
		T    time.Time      `msgpack:"t"`
		Meta map[string]any `msgpack:"meta"`
	}
	data, err := MsgpackCodec{}.Marshal(withTime{T: tm, Meta: map[string]any{"k": "v"}})
	require.NoError(t, err)
	exts, err := msgpackcheck.Scan(data)
	require.NoError(t, err)
	require.Len(t, exts, 1, "%x", data)

	var got withTime
	require.NoError(t, decode(MsgpackCodec{}, data, &got))
	assert.True(t, tm.Equal(got.T))
	assert.Equal(t, map[string]any{"k": "v"}, got.Meta)
	var untyped map[string]any
	require.NoError(t, decode(MsgpackCodec{}, data, &untyped))
	assert.True(t, tm.Equal(untyped["t"].(time.Time)))

	// The same bytes with the time where a map is expected.
	type mistyped struct {
		T map[string]any `msgpack:"t"`
	}
	err = decode(MsgpackCodec{}, data, new(mistyped))
	assert.ErrorIs(t, err, ErrDecode)
	assert.ErrorContains(t, err, "an ext payload that is not one well-formed value is read as MessagePack: its first byte reads as map16")

	// Ext values that would make msgpack allocate gigabytes, read as
	// maps: alone, in an array and in a struct field, each followed by
	// another value.
	for _, p := range extPayloads() {
		for _, tc := range []struct {
			data []byte
			v    any
		}{
			{p.data, new(map[string]any)},
			{slices.Concat(hexBytes("92"), p.data, hexBytes("00")), new([]map[string]any)},
			{slices.Concat(hexBytes("82 a1 4d"), p.data, hexBytes("a1 78 00")), new(struct{ M map[string]any })},
		} {
			err := decode(MsgpackCodec{}, tc.data, tc.v)
			assert.ErrorIs(t, err, ErrDecode, "%s into %T", p.name, tc.v)
			assert.ErrorContains(t, err, p.reason, "%s into %T", p.name, tc.v)
		}
	}
}

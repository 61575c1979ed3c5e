package mq

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
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

// testExt is a registered MessagePack extension, to round-trip ext values
// of every size.
type testExt struct{ B []byte }

func (e *testExt) MarshalMsgpack() ([]byte, error) { return e.B, nil }

func (e *testExt) UnmarshalMsgpack(b []byte) error {
	e.B = append([]byte{}, b...)
	return nil
}

func init() { msgpack.RegisterExt(77, (*testExt)(nil)) }

type innerStruct struct {
	Name  string
	Score float32
}

type outerStruct struct {
	ID     string            `msgpack:"id"`
	Count  uint16            `msgpack:"count,omitempty"`
	Inner  innerStruct       `msgpack:"inner"`
	List   []innerStruct     `msgpack:"list"`
	Labels map[string]string `msgpack:"labels"`
	Raw    []byte            `msgpack:"raw"`
}

// internedItem has fields that msgpack encodes, after their first time,
// as references (ext -128) to an earlier string of the same data.
type internedItem struct {
	Name string `msgpack:"name,intern"`
	Kind string `msgpack:"kind,intern"`
}

// roundTripValues are Go values whose encodings cover every MessagePack
// format the encoder writes, in every width.
func roundTripValues() map[string]any {
	strOf := func(n int) string { return strings.Repeat("s", n) }
	sliceOf := func(n int) []any {
		s := make([]any, n)
		for i := range s {
			s[i] = int8(i % 100)
		}
		return s
	}
	mapOf := func(n int) map[string]any {
		m := make(map[string]any, n)
		for i := range n {
			m[fmt.Sprint(i)] = nil
		}
		return m
	}
	interned := make([]internedItem, 600) // 307 strings: one- and two-byte indexes
	for i := range interned {
		interned[i] = internedItem{Name: fmt.Sprint("name-", i%300), Kind: fmt.Sprint("kind-", i%7)}
	}
	return map[string]any{
		"interned":       interned,
		"nil":            nil,
		"true":           true,
		"false":          false,
		"int fixint":     int64(5),
		"int negative":   int64(-7),
		"int8":           int8(-100),
		"int16":          int16(-30000),
		"int32":          int32(-2_000_000_000),
		"int64":          int64(math.MinInt64),
		"uint8":          uint8(200),
		"uint16":         uint16(60000),
		"uint32":         uint32(4_000_000_000),
		"uint64":         uint64(math.MaxUint64),
		"int":            42,
		"float32":        float32(1.5),
		"float64":        math.Pi,
		"float64 inf":    math.Inf(-1),
		"empty string":   "",
		"fixstr":         strOf(31),
		"str8":           strOf(255),
		"str16":          strOf(65535),
		"str32":          strOf(65536),
		"empty bytes":    []byte{},
		"bin8":           bytes.Repeat([]byte{1}, 255),
		"bin16":          bytes.Repeat([]byte{2}, 256),
		"bin32":          bytes.Repeat([]byte{3}, 65536),
		"time32":         time.Unix(1_700_000_000, 0).UTC(),
		"time64":         time.Unix(1_700_000_000, 123_456_789).UTC(),
		"time96":         time.Date(2600, 1, 2, 3, 4, 5, 6, time.UTC),
		"time before 70": time.Date(1900, 1, 2, 3, 4, 5, 6, time.UTC),
		"fixext1":        &testExt{B: []byte{1}},
		"fixext16":       &testExt{B: bytes.Repeat([]byte{9}, 16)},
		"ext8":           &testExt{B: []byte{1, 2, 3}},
		"ext16":          &testExt{B: bytes.Repeat([]byte{7}, 300)},
		"ext32":          &testExt{B: bytes.Repeat([]byte{8}, 70000)},
		"empty slice":    []any{},
		"fixarray":       sliceOf(15),
		"array16":        sliceOf(16),
		"array32":        sliceOf(65536),
		"nested slices":  [][]int{{1, 2}, {}, {3}},
		"mixed slice":    []any{int8(1), "a", []any{nil, true}, map[string]any{"k": 1.5}},
		"deep slices":    [][][][]string{{{{"deep"}}}},
		"empty map":      map[string]any{},
		"fixmap":         mapOf(15),
		"map16":          mapOf(16),
		"map32":          mapOf(65536),
		"nested map":     map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{"d"}}}},
		"map int keys":   map[int]string{1: "one", -2: "minus two"},
		"struct":         outerStruct{ID: "x", Count: 3, Inner: innerStruct{"in", 0.5}, List: []innerStruct{{"a", 1}, {"b", 2}}, Labels: map[string]string{"k": "v"}, Raw: []byte("raw")},
		"empty struct":   outerStruct{},
		"strings":        []string{"", "a", strOf(40)},
	}
}

// TestMsgpackCodecRoundTrip: the encodings of many Go values pass the
// check and come back equal; every proper prefix of them, and every one
// followed by another byte, is a decode error.
func TestMsgpackCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for name, want := range roundTripValues() {
		data, err := MsgpackCodec{}.Marshal(want)
		require.NoError(t, err, name)
		require.NoError(t, msgpackcheck.Check(data), name)

		got := reflect.New(reflect.TypeOf(&want).Elem())
		if want != nil {
			got = reflect.New(reflect.TypeOf(want))
		}
		require.NoError(t, decode(MsgpackCodec{}, data, got.Interface()), name)
		if tm, ok := want.(time.Time); ok {
			assert.True(t, tm.Equal(got.Elem().Interface().(time.Time)), "%s: %v", name, got.Elem())
		} else {
			assert.Equal(t, want, got.Elem().Interface(), name)
		}
		// Into an untyped value the decoder may refuse some (map[int]string
		// has no untyped form), but never the check.
		var ce *msgpackcheck.Error
		assert.False(t, errors.As(decode(MsgpackCodec{}, data, new(any)), &ce), name)

		for _, n := range cuts(len(data)) {
			err := decode(MsgpackCodec{}, data[:n], new(any))
			assert.ErrorIs(t, err, ErrDecode, "%s cut to %d of %d bytes", name, n, len(data))
		}
		for _, extra := range []string{"\x00", "\xc0", "\x91"} {
			err := decode(MsgpackCodec{}, append(data[:len(data):len(data)], extra...), new(any))
			assert.ErrorIs(t, err, ErrDecode, "%s followed by %x", name, extra)
			assert.ErrorContains(t, err, fmt.Sprintf("1 trailing byte after the first MessagePack value (at offset %d)", len(data)), name)
		}
	}
}

// cuts returns the lengths to cut an n-byte encoding to: all of them for
// small encodings, and for large ones the first 300, the last 300 and 100
// in between (cutting everywhere would decode gigabytes).
func cuts(n int) []int {
	if n <= 1000 {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out []int
	for i := range 300 {
		out = append(out, i, n-1-i)
	}
	for i := range 100 {
		out = append(out, 300+i*(n-600)/100)
	}
	return out
}

// maxDecodeAlloc is the most a decode through MsgpackCodec into an untyped
// value, []any, map[string]any or smallStruct may allocate for n stored
// bytes; MsgpackCodec's doc promises it.
//
// Measured by TestMsgpackCodecAllocationBound (go1.26 amd64, msgpack
// v5.4.1, least of three runs, data of 1 to 128 KiB), in bytes allocated
// per stored byte, decoding into any (into []any where that costs more):
//
//	one-entry maps nested 512 deep (81 a0 ... c0)  176 (168 in an array)
//	array of one-entry maps (81 a0 c0)             117 ([]any: 123)
//	array of empty maps (80)                        64 ([]any: 80)
//	array of empty arrays (90)                      40 ([]any: 56)
//	map of duplicate keys, preallocated (a0 c0)     40
//	map of 3-byte keys to empty maps                33
//	array of one-element arrays (91 c0)             28 ([]any: 36)
//	array of nils (c0)                              16 ([]any: 32)
//	array of times (d6 ff ...)                      11 ([]any: 13)
//
// A Go map per two stored bytes is the worst found, by hand and by
// FuzzMsgpackCodecUnmarshal. Refused data allocates 200 to 400 bytes; a
// first decode into a type fills the decoder's caches (under 12 KiB for
// smallStruct). 256 per byte leaves half as much again as the worst, and
// 64 KiB covers the constant part.
func maxDecodeAlloc(n int) uint64 { return 256*uint64(n) + 64<<10 }

// allocated returns the bytes allocated on the heap while f runs, the
// least of up to three runs: another goroutine allocating meanwhile would
// be counted too, and a second run is needed only when the first is high.
func allocated(limit uint64, f func()) uint64 {
	var before, after runtime.MemStats
	least := uint64(math.MaxUint64)
	for range 3 {
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
		if least <= limit {
			break
		}
	}
	return least
}

// boundedPayloads are valid worst cases for the allocation ratio, and
// hostile ones small enough to decode without the check (they then
// allocate megabytes, not gigabytes).
func boundedPayloads() []payload {
	arrayOf := func(n int, elem string) []byte {
		b := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		return append(b, bytes.Repeat(hexBytes(elem), n)...)
	}
	nest := func(n int, head, leaf string) []byte {
		return append(bytes.Repeat(hexBytes(head), n), hexBytes(leaf)...)
	}
	keys := hexBytes("de 40 00")
	for i := range 1 << 14 {
		keys = append(keys, 0xa2, byte(i>>8), byte(i), 0x80)
	}
	chains := hexBytes("dc 00 40")
	for range 64 {
		chains = append(chains, nest(511, "81 a0", "c0")...)
	}
	out := []payload{
		{name: "nested maps", data: nest(512, "81 a0", "c0")},
		{name: "array of nested maps", data: chains},
		{name: "one-entry maps", data: arrayOf(1<<14, "81 a0 c0")},
		{name: "empty maps", data: arrayOf(1<<16, "80")},
		{name: "empty arrays", data: arrayOf(1<<16, "90")},
		{name: "one-element arrays", data: arrayOf(1<<15, "91 c0")},
		{name: "nils", data: arrayOf(1<<16, "c0")},
		{name: "map of empty maps", data: keys},
		{name: "duplicate keys", data: append(hexBytes("de ff ff"), bytes.Repeat(hexBytes("a0 c0"), 0xffff)...)},
		{name: "times", data: arrayOf(1<<13, "d6 ff 00 00 00 01")},
		{name: "array16 of 65535 declared", data: hexBytes("dc ff ff"), reason: "hostile"},
		{name: "bin32 of 1 MiB declared", data: hexBytes("c6 00 10 00 00"), reason: "hostile"},
		{name: "map16 of 65535 declared", data: hexBytes("de ff ff"), reason: "hostile"},
		{name: "nested array16 headers", data: bytes.Repeat(hexBytes("dc ff ff"), 64), reason: "hostile"},
		// Valid, and misread as a map32 of 4,294,967,040 entries where a
		// map is expected: [time, 0] and {"meta": time, "id": ""}.
		{name: "time read as a map", data: hexBytes("92 d6 ff df ff ff ff 00")},
		{name: "time field read as a map", data: slices.Concat(hexBytes("82 a4"), []byte("meta"), hexBytes("d6 ff df ff ff ff a2 69 64 a0"))},
	}
	for _, p := range extPayloads()[:3] {
		out = append(out, payload{name: p.name, data: p.data})
	}
	return out
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

// TestMsgpackCodecAllocationBound: decodes into untyped values and a small
// struct stay within maxDecodeAlloc, for the worst valid data measured and
// for small hostile data. Not parallel: it counts every allocation.
func TestMsgpackCodecAllocationBound(t *testing.T) {
	for _, p := range boundedPayloads() {
		if p.reason == "" {
			require.NoError(t, msgpackcheck.Check(p.data), p.name)
		}
		for _, target := range decodeTargets {
			limit := maxDecodeAlloc(len(p.data))
			got := allocated(limit, func() { _ = MsgpackCodec{}.Unmarshal(p.data, target.new()) })
			assert.LessOrEqual(t, got, limit, "%s into %s: %d bytes for %d stored", p.name, target.name, got, len(p.data))
			t.Logf("%-26s into %-6s %8d stored, %10d allocated (%.1f per byte)", p.name, target.name, len(p.data), got, float64(got)/float64(len(p.data)))
		}
	}
}

// FuzzMsgpackCodecUnmarshal feeds any bytes to the default codec, into an
// untyped value, a map and a small struct: it must not panic, must not
// allocate past maxDecodeAlloc, and what the check accepts the decoder
// must read as exactly one value. Run it with
//
//	go test -run '^$' -fuzz '^FuzzMsgpackCodecUnmarshal$' -fuzztime 5m
//
// Without -fuzz only the seeds run (those in testdata/fuzz too).
func FuzzMsgpackCodecUnmarshal(f *testing.F) {
	for _, p := range hostilePayloads() {
		if len(p.data) < 1<<17 { // the 5 MiB nesting is for the memory-cap test
			f.Add(p.data)
		}
	}
	f.Add(bytes.Repeat([]byte{0x91}, 600))
	for _, p := range foreignPayloads() {
		f.Add(p.data)
	}
	for _, p := range extPayloads() {
		f.Add(p.data)
		f.Add(slices.Concat(hexBytes("92"), p.data, hexBytes("00")))
	}
	f.Add(hexBytes("94 a1 61 d4 80 00 d4 80 9a c0")) // interned-string references
	for _, p := range boundedPayloads() {
		if len(p.data) < 1<<12 {
			f.Add(p.data)
		}
	}
	for _, name := range []string{"struct", "mixed slice", "nested map", "time96", "ext8", "fixmap", "map int keys"} {
		data, err := MsgpackCodec{}.Marshal(roundTripValues()[name])
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add(hexBytes("85 a2 69 64 a1 78 a1 6e 05 a2 6f 6b c3 a4 74 61 67 73 92 a1 61 a1 62 a4 6d 65 74 61 81 a1 6b 90"))
	f.Fuzz(func(t *testing.T, data []byte) {
		limit := maxDecodeAlloc(len(data))
		for _, target := range decodeTargets[:5] {
			var err error
			got := allocated(limit, func() { err = MsgpackCodec{}.Unmarshal(data, target.new()) })
			if got > limit {
				t.Fatalf("decoding %d bytes into %s allocated %d bytes, more than %d (err: %v)", len(data), target.name, got, limit, err)
			}
		}
		if msgpackcheck.Check(data) == nil {
			r := bytes.NewReader(data)
			if err := msgpack.NewDecoder(r).Skip(); err != nil || r.Len() != 0 {
				t.Fatalf("the check accepted data the decoder cannot skip over (err %v, %d bytes left)", err, r.Len())
			}
		}
	})
}

// BenchmarkMsgpackCodecUnmarshal compares MsgpackCodec.Unmarshal with
// msgpack.Unmarshal alone, on a typical message and on one with times
// (whose payloads send the decode through msgpackcheck.Reader).
func BenchmarkMsgpackCodecUnmarshal(b *testing.B) {
	typical, err := MsgpackCodec{}.Marshal(map[string]any{
		"id": "5f0c3a1e-7a4b-4c1d-9d6e-2a3b4c5d6e7f", "to": "ada@example.com", "attempt": 3,
		"items": []any{map[string]any{"sku": "A-1", "qty": 2}, map[string]any{"sku": "B-7", "qty": 1}},
	})
	require.NoError(b, err)
	stamps := make([]time.Time, 100)
	for i := range stamps {
		stamps[i] = time.Unix(1_700_000_000+int64(i), int64(i)*9_999_999)
	}
	withTimes, err := MsgpackCodec{}.Marshal(map[string]any{"id": "x", "stamps": stamps})
	require.NoError(b, err)
	for _, in := range []struct {
		name string
		data []byte
	}{{"typical", typical}, {"times", withTimes}} {
		b.Run(in.name+"/msgpack", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				var v any
				if err := msgpack.Unmarshal(in.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/codec", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				var v any
				if err := (MsgpackCodec{}).Unmarshal(in.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

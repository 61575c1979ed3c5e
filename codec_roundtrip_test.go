package mq

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

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

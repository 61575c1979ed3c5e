package msgpackcheck

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// h decodes hex written with spaces for reading.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cat joins byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// valid holds one encoding of every MessagePack type, in every width, by
// hand so that the wide forms appear even for small contents (an encoder
// picks the narrowest).
var valid = map[string][]byte{
	"positive fixint 0":   h("00"),
	"positive fixint 127": h("7f"),
	"negative fixint -32": h("e0"),
	"negative fixint -1":  h("ff"),
	"nil":                 h("c0"),
	"false":               h("c2"),
	"true":                h("c3"),
	"empty fixmap":        h("80"),
	"fixmap":              h("82 a1 61 01 a1 62 c0"),
	"full fixmap":         cat(h("8f"), bytes.Repeat(h("00 c0"), 15)),
	"empty fixarray":      h("90"),
	"fixarray":            h("93 01 a0 c3"),
	"full fixarray":       cat(h("9f"), bytes.Repeat(h("c0"), 15)),
	"empty fixstr":        h("a0"),
	"fixstr":              cat(h("a3"), []byte("abc")),
	"full fixstr":         cat(h("bf"), bytes.Repeat([]byte("x"), 31)),
	"empty bin8":          h("c4 00"),
	"bin8":                h("c4 03 01 02 03"),
	"bin16":               h("c5 00 02 ab cd"),
	"bin32":               h("c6 00 00 00 01 ff"),
	"empty ext8":          h("c7 00 05"),
	"ext8":                h("c7 02 05 ab cd"),
	"ext16":               h("c8 00 01 05 ab"),
	"ext32":               h("c9 00 00 00 01 05 ab"),
	"time ext8 96-bit":    h("c7 0c ff 00 00 00 01 00 00 00 00 00 00 00 02"),
	"float32":             h("ca 3f 80 00 00"),
	"float64":             h("cb 3f f0 00 00 00 00 00 00"),
	"uint8":               h("cc ff"),
	"uint16":              h("cd ff ff"),
	"uint32":              h("ce ff ff ff ff"),
	"uint64":              h("cf ff ff ff ff ff ff ff ff"),
	"int8":                h("d0 80"),
	"int16":               h("d1 80 00"),
	"int32":               h("d2 80 00 00 00"),
	"int64":               h("d3 80 00 00 00 00 00 00 00"),
	"fixext1":             h("d4 05 01"),
	"fixext2":             h("d5 05 01 02"),
	"fixext4 (time32)":    h("d6 ff 00 00 00 01"),
	"fixext8 (time64)":    h("d7 ff 00 00 00 04 00 00 00 01"),
	"fixext16":            cat(h("d8 05"), bytes.Repeat(h("aa"), 16)),
	"str8":                cat(h("d9 02"), []byte("hi")),
	"empty str8":          h("d9 00"),
	"str16":               cat(h("da 00 02"), []byte("hi")),
	"str32":               cat(h("db 00 00 00 02"), []byte("hi")),
	"empty array16":       h("dc 00 00"),
	"array16":             h("dc 00 02 01 02"),
	"array32":             h("dd 00 00 00 02 01 02"),
	"empty map16":         h("de 00 00"),
	"map16":               h("de 00 01 a1 6b c0"),
	"map32":               h("df 00 00 00 01 a1 6b c0"),
	"map with array keys": h("81 92 01 02 c3"),
	"nested":              h("92 81 a1 61 91 c0 dc 00 02 c3 90"),
	"empty last":          h("92 01 92 02 90"),
	"nested 512 arrays":   nested(MaxDepth, h("91"), h("c0")),
	"nested 512 maps":     nested(MaxDepth, h("81 a0"), h("c0")),
	"empty at depth 512":  nested(MaxDepth-1, h("91"), h("90")),
	"siblings at 512":     nested(MaxDepth-2, h("91"), h("92 90 80")),
}

// nested wraps leaf in n copies of head.
func nested(n int, head, leaf []byte) []byte {
	return cat(bytes.Repeat(head, n), leaf)
}

// TestCheckValid: each valid encoding is accepted, and is exactly one
// value: every proper prefix of it lacks part of the value, and says so at
// an offset inside the data, and a byte after it, whatever it is, is
// refused at the offset where the value ended.
func TestCheckValid(t *testing.T) {
	for name, data := range valid {
		assert.NoError(t, Check(data), name)
		// The decoder this package guards agrees that data is one value.
		r := bytes.NewReader(data)
		assert.NoError(t, msgpack.NewDecoder(r).Skip(), name)
		assert.Zero(t, r.Len(), name)

		for n := range len(data) {
			var e *Error
			if assert.ErrorAs(t, Check(data[:n]), &e, "%s cut to %d bytes", name, n) {
				assert.LessOrEqual(t, e.Offset, n, "%s cut to %d bytes", name, n)
				assert.NotContains(t, e.Reason, "trailing", "%s cut to %d bytes", name, n)
			}
		}

		for _, extra := range [][]byte{h("00"), h("c0"), h("dd ff ff ff ff"), data} {
			var e *Error
			if assert.ErrorAs(t, Check(cat(data, extra)), &e, name) {
				assert.Equal(t, len(data), e.Offset, name)
				assert.Contains(t, e.Reason, plural(uint64(len(extra)), "trailing byte")+" after the first MessagePack value", name)
			}
		}
	}
}

// hostile are stored messages that made vmihailenco/msgpack allocate from
// the lengths they declare (issue 9).
var hostile = []struct {
	name   string
	data   []byte
	offset int
	reason string
}{
	{"array32 of 2^32-1", h("dd ff ff ff ff"), 0, "array32 declares 4294967295 elements, but no bytes remain to hold them"},
	{"array32 in a map", h("81 a1 61 dd ff ff ff ff"), 3, "array32 declares 4294967295 elements"},
	{"bin32 of 4 GiB", h("c6 ff ff ff ff"), 0, "bin32 declares 4294967295 bytes, but no bytes remain"},
	{"str32 of 4 GiB", h("db ff ff ff ff"), 0, "str32 declares 4294967295 bytes, but no bytes remain"},
	{"ext32 of 4 GiB", h("c9 ff ff ff ff 05"), 0, "ext32 declares 4294967295 bytes after its type byte, but no bytes remain"},
	{"ext8 without its type", h("c7 01"), 0, "ext8 header needs a type byte, but no bytes remain"},
	{"map32 of 2^32-1", h("df ff ff ff ff"), 0, "map32 declares 4294967295 entries (8589934590 keys and values), but no bytes remain to hold them"},
	{"map16 of 1 with no value", h("de 00 01 a0"), 0, "map16 declares 1 entry (2 keys and values), but only 1 byte remains to hold them"},
	{"map of 2 with a value missing", h("82 a1 61 c0 a1 62"), 6, "data ends where a value was expected"},
	{"nested array16 headers", bytes.Repeat(h("dc ff ff"), 24000), 3, "array16 declares 65535 elements; with the 65534 values still to come around it, that is more than the 71994 bytes that remain could hold"},
	{"array16 of 2 with 1 present", h("dc 00 02 c0"), 0, "array16 declares 2 elements, but only 1 byte remains to hold them"},
	{"array headers owing more than data holds", h("92 dc 00 03 01 02 03"), 1, "array16 declares 3 elements; with the 1 values still to come around it"},
	{"nested one-element arrays", nested(24000, h("91"), h("c0")), MaxDepth, "nest deeper than 512 levels"},
	{"nested one-entry maps", nested(24000, h("81 a0"), h("c0")), 2 * MaxDepth, "nest deeper than 512 levels"},
	{"empty array at depth 513", nested(MaxDepth, h("91"), h("90")), MaxDepth, "nest deeper than 512 levels"},
	{"empty map at depth 513", nested(MaxDepth, h("91"), h("80")), MaxDepth, "nest deeper than 512 levels"},
	{"0xc1", h("c1"), 0, "byte 0xc1 is never used in MessagePack"},
	{"0xc1 inside", h("92 01 c1"), 2, "byte 0xc1"},
	{"empty", nil, 0, "data ends where a value was expected"},
	{"array16 header cut", h("dc 00"), 0, "array16 header needs 2 length bytes, but only 1 byte remains"},
	{"int64 cut", h("d3 00 00"), 0, "int64 needs 8 bytes after its first, but only 2 bytes remain"},
	{"fixext16 cut", h("d8 05 00"), 0, "fixext16 needs 16 bytes after its type byte, but only 1 byte remains"},
	{"fixext1 without its type", h("d4"), 0, "fixext1 header needs a type byte, but no bytes remain"},
	{"truncated array", h("93 01 a1 61"), 4, "data ends where a value was expected"},
	{"truncated map", h("82 01 02 03"), 0, "fixmap declares 2 entries (4 keys and values), but only 3 bytes remain to hold them"},
	{"truncated nest", h("92 92 01"), 1, "fixarray declares 2 elements, but only 1 byte remains to hold them"},
	{"children at depth 513", nested(MaxDepth-1, h("91"), h("92 90 80")), MaxDepth, "nest deeper than 512 levels"},
	{"nest ending early", h("92 92 d3 00 00 00 00 00 00 00 01"), 11, "data ends where 2 more values were expected"},
}

func TestCheckRefusesHostile(t *testing.T) {
	for _, tc := range hostile {
		err := Check(tc.data)
		var e *Error
		if assert.ErrorAs(t, err, &e, tc.name) {
			assert.Equal(t, tc.offset, e.Offset, "%s: %v", tc.name, err)
			assert.Contains(t, e.Reason, tc.reason, tc.name)
			assert.Empty(t, e.Hint, tc.name)
		}
	}
}

// TestCheckNamesForeignFormats: content a Clojure service or a person
// writes to a shared queue starts with a byte that MessagePack reads as a
// small integer; the error says what it looks like instead.
func TestCheckNamesForeignFormats(t *testing.T) {
	for _, tc := range []struct {
		name, data, hint string
	}{
		{"Nippy", "NPY\x00i\x05hello", "Nippy (Carmine's default encoding)"},
		{"Nippy, other header", "NPY\x08\x00\x00\x00\x03abc", "Nippy (Carmine's default encoding)"},
		{"JSON object", `{"to":"ada@example.com"}`, "JSON"},
		{"JSON array", ` [1, 2, 3]`, "JSON"},
		{"text", "hello", "text"},
		{"text with accents and lines", "héllo,\r\n\twörld", "text"},
		{"number as text", "420", "text"},
		{"broken JSON is text", `{"to":`, "text"},
		{"binary", "\x01\x02\x03", ""},
		{"text then binary", "ab\x00", ""},
	} {
		err := Check([]byte(tc.data))
		var e *Error
		if assert.ErrorAs(t, err, &e, tc.name) {
			assert.Equal(t, 1, e.Offset, tc.name)
			assert.Equal(t, tc.hint, e.Hint, tc.name)
			assert.Contains(t, e.Reason, "trailing bytes after the first MessagePack value", tc.name)
		}
	}
	err := Check([]byte("NPY\x00i\x05hello"))
	assert.EqualError(t, err, "msgpack: 10 trailing bytes after the first MessagePack value (at offset 1); this looks like Nippy (Carmine's default encoding)")
	err = Check([]byte(`{"to":"ada@example.com"}`))
	assert.EqualError(t, err, "msgpack: 23 trailing bytes after the first MessagePack value (at offset 1); this looks like JSON")
	err = Check([]byte("hello"))
	assert.EqualError(t, err, "msgpack: 4 trailing bytes after the first MessagePack value (at offset 1); this looks like text")
}

func TestErrorMessage(t *testing.T) {
	err := Check(h("c1"))
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, "msgpack: byte 0xc1 is never used in MessagePack (at offset 0)", err.Error())
}

// TestCheckAllocations: no heap allocation for a valid value nested up to
// 32 levels, and a few (the stack of counts growing) up to MaxDepth; never
// anything sized by a declared length.
func TestCheckAllocations(t *testing.T) {
	shallow := cat(h("dd 00 01 00 00"), bytes.Repeat(h("92 a1 61 81 a0 c0"), 1<<16))
	require.NoError(t, Check(shallow))
	assert.Zero(t, testing.AllocsPerRun(20, func() { _ = Check(shallow) }))
	at32 := nested(32, h("91"), h("c0"))
	require.NoError(t, Check(at32))
	assert.Zero(t, testing.AllocsPerRun(20, func() { _ = Check(at32) }))
	deep := valid["nested 512 maps"]
	assert.LessOrEqual(t, testing.AllocsPerRun(20, func() { _ = Check(deep) }), 8.0)
	// Refusals allocate their error, whatever the length declared. (Over
	// 100 runs, so that an allocation of the runtime's own during the
	// measurement, which counts too, is averaged away: over 5, one CI run
	// on a loaded machine read 17 for a case that allocates 16.)
	for _, tc := range hostile {
		require.Error(t, Check(tc.data), tc.name)
		assert.LessOrEqual(t, testing.AllocsPerRun(100, func() { _ = Check(tc.data) }), 16.0, tc.name)
	}
}

// BenchmarkCheck compares Check with the decode it guards, on a typical
// message and on large ones. Run with -bench=Check -benchmem.
func BenchmarkCheck(b *testing.B) {
	type order struct {
		ID       string
		Customer string
		Items    []map[string]any
		Total    float64
		Paid     bool
		Tags     []string
	}
	typical, err := msgpack.Marshal(order{
		ID: "5f0c3a1e-7a4b-4c1d-9d6e-2a3b4c5d6e7f", Customer: "ada@example.com",
		Items: []map[string]any{{"sku": "A-1", "qty": 2, "price": 9.5}, {"sku": "B-7", "qty": 1, "price": 20.25}},
		Total: 39.25, Paid: true, Tags: []string{"priority", "gift"},
	})
	require.NoError(b, err)
	ints := make([]int64, 1<<14)
	for i := range ints {
		ints[i] = int64(i) * 7919
	}
	manyInts, err := msgpack.Marshal(ints)
	require.NoError(b, err)
	docs := make([]map[string]any, 1000)
	for i := range docs {
		docs[i] = map[string]any{"id": i, "name": "item", "tags": []string{"a", "b"}, "ok": i%2 == 0}
	}
	manyMaps, err := msgpack.Marshal(docs)
	require.NoError(b, err)
	blob, err := msgpack.Marshal(bytes.Repeat([]byte("x"), 1<<20))
	require.NoError(b, err)

	for _, in := range []struct {
		name string
		data []byte
	}{{"typical", typical}, {"ints", manyInts}, {"maps", manyMaps}, {"blob", blob}} {
		b.Run(in.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				if err := Check(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				var v any
				if err := msgpack.Unmarshal(in.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestScanExts: Scan lists the ext payloads that are not exactly one
// well-formed value, and the exts inside payloads, and only those.
func TestScanExts(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		exts []int
	}{
		{"a time", h("d6 ff 65 53 f1 00"), []int{2}},
		{"found by fuzzing", cat(h("c7 0c 30 de"), bytes.Repeat([]byte("0"), 11)), []int{3}},
		{"time32 that reads as map32", h("92 d6 ff df ff ff ff 00"), []int{3}},
		{"two of them", h("93 d4 05 de d6 ff df ff ff ff 00"), []int{3, 6}},
		{"hostile payload", h("c7 05 05 dd ff ff ff ff"), []int{3}},
		{"payload cut short", h("d5 05 de 00"), []int{2}},
		{"payload too deep", nested(MaxDepth, h("91"), h("c7 01 05 90")), []int{MaxDepth + 3}},
		{"payload at the deepest", nested(MaxDepth-1, h("91"), h("c7 01 05 90")), nil},
		{"fixint payload", h("d4 05 01"), nil},
		{"string payload", h("c7 03 05 a2 68 69"), nil},
		{"map payload", h("c7 03 05 81 a0 c0"), nil},
		{"ext in a payload", h("c7 03 05 d4 06 01"), []int{5}},
		{"empty ext", h("92 c7 00 05 de 00 00"), nil},
		{"no ext", h("92 de 00 00 c0"), nil},
	} {
		exts, err := Scan(tc.data)
		require.NoError(t, err, tc.name)
		var offsets []int
		for _, p := range exts {
			offsets = append(offsets, p.Offset)
			assert.Equal(t, tc.data[p.Offset-1], p.Type, tc.name)
		}
		assert.Equal(t, tc.exts, offsets, tc.name)
	}
	exts, err := Scan(h("92 c7 03 05 01 02 03 d4 80 9a"))
	require.NoError(t, err)
	assert.Equal(t, []Payload{{Offset: 4, Len: 3, Type: 5}, {Offset: 9, Len: 1, Type: 0x80}}, exts)
	_, err = Scan(h("d4 05"))
	assert.Error(t, err)
}

// TestReader: a decoder reading through a Reader decodes as from the
// bytes, except that reading a listed ext payload as a map fails.
func TestReader(t *testing.T) {
	// A time whose 64-bit form begins with 0xde: 935,000,000 ns >> 22.
	tm := time.Unix(1_700_000_000, 935_000_000)
	data, err := msgpack.Marshal([]any{tm, "x"})
	require.NoError(t, err)
	exts, err := Scan(data)
	require.NoError(t, err)
	require.Equal(t, []Payload{{Offset: 3, Len: 8, Type: 0xff}}, exts, "%x", data)

	var times []any
	require.NoError(t, msgpack.NewDecoder(NewReader(data, exts)).Decode(&times))
	assert.True(t, tm.Equal(times[0].(time.Time)))
	var typed struct {
		T time.Time
		S string
	}
	require.NoError(t, msgpack.NewDecoder(NewReader(data, exts)).Decode(&typed))
	assert.True(t, tm.Equal(typed.T))

	var maps []map[string]any
	err = msgpack.NewDecoder(NewReader(data, exts)).Decode(&maps)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 3, e.Offset)
	assert.Equal(t, "msgpack: an ext payload that is not one well-formed value is read as MessagePack: its first byte reads as map16 (at offset 3)", e.Error())

	// The one-byte payload of an interned string may be read alone, if
	// the decoder reads on from the value after it.
	data = h("93 d4 80 9a 01 02")
	exts, err = Scan(data)
	require.NoError(t, err)
	r := NewReader(data, exts)
	for _, want := range data[:4] {
		c, err := r.ReadByte()
		require.NoError(t, err)
		assert.Equal(t, want, c)
	}
	c, err := r.ReadByte()
	assert.Equal(t, byte(1), c)
	assert.NoError(t, err)
	r = NewReader(data, exts)
	_, err = io.ReadFull(r, make([]byte, 3))
	require.NoError(t, err)
	_, err = r.ReadByte()
	require.NoError(t, err)
	_, err = r.Read(make([]byte, 2)) // the index taken for a str8 header, say
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 4, e.Offset)
	// Any other one-byte payload may not.
	r = NewReader(h("92 d4 05 9a 01"), []Payload{{Offset: 3, Len: 1, Type: 5}})
	_, err = io.ReadFull(r, make([]byte, 3))
	require.NoError(t, err)
	_, err = r.ReadByte()
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 3, e.Offset)

	r = NewReader(h("01 02 03"), nil)
	assert.Error(t, r.UnreadByte())
	c, err = r.ReadByte()
	assert.Equal(t, byte(1), c)
	assert.NoError(t, err)
	assert.NoError(t, r.UnreadByte())
	buf := make([]byte, 5)
	n, err := r.Read(buf)
	assert.Equal(t, 3, n)
	assert.NoError(t, err)
	_, err = r.Read(buf)
	assert.ErrorIs(t, err, io.EOF)
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
}

package mq

import (
	"bytes"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

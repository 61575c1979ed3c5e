package mq

import (
	"bytes"
	"slices"
	"testing"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

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

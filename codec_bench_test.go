package mq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

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

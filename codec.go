package mq

import (
	"fmt"

	"github.com/gocarmine/mq/internal/msgpackcheck"
	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns messages into the bytes stored in Redis and back. A Go and a
// Clojure service sharing a queue must use codecs that agree. A Codec must be
// safe for concurrent use.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a non-nil pointer.
	Unmarshal(data []byte, v any) error
}

// MsgpackCodec encodes messages as MessagePack. It is the default codec.
// Decoding into an untyped value gives maps, slices, strings and numbers.
//
// Unmarshal first checks that data is exactly one well-formed MessagePack
// value, and refuses it otherwise: when a declared length (of a string,
// binary, ext, array or map) is not backed by the bytes that follow, when
// arrays and maps nest more than 512 levels deep, or when bytes follow the
// first value, which is how JSON, text and Carmine's Nippy data look to a
// MessagePack reader. The error says what is wrong and at which offset;
// [Message.Decode], [Message.Value] and [Inspector.QueueContent] wrap it in
// ErrDecode.
//
// Stored bytes therefore cannot make a decode allocate from the lengths
// they claim. Into an untyped value (any, []any, map[string]any) a decode
// allocates at most 256 times len(data), plus 64 KiB; the worst measured is
// about 170 times, for one-entry maps nested in each other. Into a typed
// target each element the decoder makes room for is backed by at least
// one stored byte, so the bound scales with the size of the target's
// element types instead.
type MsgpackCodec struct{}

// Marshal encodes v as MessagePack.
func (MsgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Unmarshal decodes MessagePack data into v, after checking its shape (see
// [MsgpackCodec]).
func (MsgpackCodec) Unmarshal(data []byte, v any) error {
	exts, err := msgpackcheck.Scan(data)
	if err != nil {
		return err
	}
	if exts == nil {
		return msgpack.Unmarshal(data, v)
	}
	// Some ext payload is not MessagePack (a time's is not), and the
	// decoder may yet read it as such (see msgpackcheck.Scan): the
	// checking reader refuses that read.
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(msgpackcheck.NewReader(data, exts))
	return dec.Decode(v)
}

// Raw is a message stored as it is, whatever the codec: enqueue a Raw to
// write bytes that are already encoded (JSON, protobuf, another service's
// format), and read them back with [Message.Data].
type Raw []byte

// encode turns a message into its stored bytes.
func (c *Client) encode(msg any) ([]byte, error) {
	if raw, ok := msg.(Raw); ok {
		if raw == nil {
			return []byte{}, nil
		}
		return raw, nil
	}
	data, err := c.cfg.Codec.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("mq: cannot encode message: %w", err)
	}
	return data, nil
}

// decode decodes stored bytes into v, turning any failure (a panic in the
// codec included) into an error wrapping ErrDecode.
func decode(codec Codec, data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: codec panicked: %v", ErrDecode, r)
		}
	}()
	if err := codec.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return nil
}

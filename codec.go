package mq

import (
	"fmt"

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
type MsgpackCodec struct{}

// Marshal encodes v as MessagePack.
func (MsgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Unmarshal decodes MessagePack data into v.
func (MsgpackCodec) Unmarshal(data []byte, v any) error { return msgpack.Unmarshal(data, v) }

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

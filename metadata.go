package mq

import (
	"encoding/json"
	"fmt"
)

// maxMetadataSize bounds a message's encoded metadata.
const maxMetadataSize = 64 << 10

// encodeMetadata encodes EnqueueOptions.Metadata as a JSON object (nil
// for none), so that any service reading the queue's meta key can read
// it.
func encodeMetadata(m map[string]string) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrInvalidOption, err)
	}
	if len(b) > maxMetadataSize {
		return nil, fmt.Errorf("%w: metadata of %d bytes encoded, the limit is %d", ErrMessageTooLarge, len(b), maxMetadataSize)
	}
	return b, nil
}

// decodeMetadata decodes stored metadata; what is not a JSON object of
// strings (written by another program) is dropped, as none.
func decodeMetadata(b []byte) map[string]string {
	if len(b) == 0 {
		return nil
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

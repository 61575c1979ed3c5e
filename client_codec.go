package mq

// Codec returns the codec the client encodes messages with and decodes
// them with ([Config.Codec], MsgpackCodec by default), so that a helper
// outside the package (mqtest, say) can compare a value with what the
// queue holds as the client reads it.
func (c *Client) Codec() Codec { return c.cfg.Codec }

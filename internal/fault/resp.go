package fault

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// maxBulk is the largest bulk string the reader accepts: Redis's own limit
// on one string.
const maxBulk = 512 << 20

// errProtocol reports bytes that are not RESP.
var errProtocol = errors.New("fault: not RESP")

// frame is one complete RESP value as it came over the wire.
type frame struct {
	raw  []byte // every byte of the value, to forward as it is
	push bool   // a RESP3 push ('>'): out of band, not the answer to a request
	// name is the command name of a request (its first element, lower
	// case); empty for replies.
	name string
}

// respReader splits a byte stream into RESP values. It knows the RESP2 and
// RESP3 types: simple strings (+), errors (-), integers (:), bulk strings
// ($), arrays (*), nulls (_), doubles (,), booleans (#), big numbers ((),
// blob errors (!), verbatim strings (=), maps (%), sets (~), attributes (|)
// and pushes (>). An attribute is read together with the value it
// annotates, as one frame. Streamed strings and aggregates (a length of
// "?") are not supported: Redis does not send them.
type respReader struct {
	r   *bufio.Reader
	buf []byte
}

func newRESPReader(r io.Reader) *respReader {
	return &respReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// buffered tells whether bytes already read from the stream wait to be
// parsed, that is, whether more frames of the same write may follow.
func (rr *respReader) buffered() bool { return rr.r.Buffered() > 0 }

// reply reads one reply. The frame's raw bytes are valid until the next
// call.
func (rr *respReader) reply() (frame, error) {
	rr.buf = rr.buf[:0]
	c, err := rr.r.Peek(1)
	if err != nil {
		return frame{}, err
	}
	push := c[0] == '>'
	if err := rr.value(); err != nil {
		return frame{}, err
	}
	return frame{raw: rr.buf, push: push}, nil
}

// request reads one command: a RESP array of bulk strings, as clients
// send, or an inline command (a line of words). The frame's name is the
// command's first word in lower case.
func (rr *respReader) request() (frame, error) {
	rr.buf = rr.buf[:0]
	c, err := rr.r.Peek(1)
	if err != nil {
		return frame{}, err
	}
	if c[0] != '*' {
		line, err := rr.line()
		if err != nil {
			return frame{}, err
		}
		name, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		return frame{raw: rr.buf, name: string(bytes.ToLower(name))}, nil
	}
	line, err := rr.line()
	if err != nil {
		return frame{}, err
	}
	n, err := length(line[1:])
	if err != nil {
		return frame{}, err
	}
	var name string
	for i := 0; i < n; i++ {
		start := len(rr.buf)
		if err := rr.value(); err != nil {
			return frame{}, err
		}
		if i == 0 {
			name = string(bytes.ToLower(bulkBody(rr.buf[start:])))
		}
	}
	return frame{raw: rr.buf, name: name}, nil
}

// bulkBody returns the text of a bulk or simple string frame.
func bulkBody(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n"))
	if !ok {
		return nil
	}
	if raw[0] == '$' {
		return bytes.TrimSuffix(body, []byte("\r\n"))
	}
	return head[1:]
}

// value reads one value, appending its bytes to rr.buf.
func (rr *respReader) value() error {
	line, err := rr.line()
	if err != nil {
		return err
	}
	if len(line) == 0 {
		return fmt.Errorf("%w: empty line", errProtocol)
	}
	t := line[0]
	switch t {
	case '+', '-', ':', '_', ',', '#', '(':
		return nil
	case '$', '!', '=':
		n, err := length(line[1:])
		if err != nil || n < 0 { // -1: RESP2's null bulk string
			return err
		}
		if n > maxBulk {
			return fmt.Errorf("%w: bulk of %d bytes", errProtocol, n)
		}
		start := len(rr.buf)
		rr.buf = slices.Grow(rr.buf, n+2)[:start+n+2]
		if _, err := io.ReadFull(rr.r, rr.buf[start:]); err != nil {
			return unexpected(err)
		}
		if !bytes.HasSuffix(rr.buf, []byte("\r\n")) {
			return fmt.Errorf("%w: bulk not ended by CRLF", errProtocol)
		}
		return nil
	case '*', '~', '>', '%', '|':
		n, err := length(line[1:])
		if err != nil || n < 0 { // -1: RESP2's null array
			return err
		}
		if t == '%' || t == '|' {
			n *= 2 // key and value
		}
		for range n {
			if err := rr.value(); err != nil {
				return unexpected(err)
			}
		}
		if t == '|' {
			return unexpected(rr.value()) // the value the attribute annotates
		}
		return nil
	}
	return fmt.Errorf("%w: type byte %q", errProtocol, t)
}

// line reads one CRLF-ended line, appending it to rr.buf, and returns it
// without the CRLF.
func (rr *respReader) line() ([]byte, error) {
	start := len(rr.buf)
	for {
		chunk, err := rr.r.ReadSlice('\n')
		rr.buf = append(rr.buf, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(rr.buf) > start {
				return nil, unexpected(err)
			}
			return nil, err
		}
	}
	l := rr.buf[start:]
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", errProtocol)
	}
	return l[:len(l)-2], nil
}

// length parses an aggregate's or bulk's length.
func length(b []byte) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < -1 {
		return 0, fmt.Errorf("%w: length %q", errProtocol, b)
	}
	return n, nil
}

// unexpected turns an EOF inside a value into io.ErrUnexpectedEOF: the
// stream ended part way.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

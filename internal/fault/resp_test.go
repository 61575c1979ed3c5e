package fault

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// replyCases are RESP2 and RESP3 values, each a complete frame.
var replyCases = []struct {
	name, raw string
	push      bool
}{
	{name: "simple string", raw: "+OK\r\n"},
	{name: "error", raw: "-ERR wrong\r\n"},
	{name: "integer", raw: ":-42\r\n"},
	{name: "bulk", raw: "$5\r\nhe\r\no\r\n"},
	{name: "empty bulk", raw: "$0\r\n\r\n"},
	{name: "null bulk", raw: "$-1\r\n"},
	{name: "null array", raw: "*-1\r\n"},
	{name: "array", raw: "*3\r\n$1\r\na\r\n:2\r\n*1\r\n+c\r\n"},
	{name: "empty array", raw: "*0\r\n"},
	{name: "null", raw: "_\r\n"},
	{name: "double", raw: ",3.25\r\n"},
	{name: "infinite double", raw: ",-inf\r\n"},
	{name: "boolean", raw: "#t\r\n"},
	{name: "big number", raw: "(3492890328409238509324850943850943825024385\r\n"},
	{name: "blob error", raw: "!21\r\nSYNTAX invalid syntax\r\n"},
	{name: "verbatim", raw: "=15\r\ntxt:Some string\r\n"},
	{name: "map", raw: "%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n%1\r\n+x\r\n_\r\n"},
	{name: "set", raw: "~3\r\n+a\r\n:1\r\n#f\r\n"},
	{name: "push", raw: ">3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n_\r\n", push: true},
	{name: "attribute", raw: "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039\r\n:9543\r\n"},
	{name: "nested", raw: "*2\r\n%1\r\n+k\r\n~1\r\n*1\r\n$0\r\n\r\n>1\r\n+p\r\n"},
	{name: "long line", raw: "+" + strings.Repeat("x", 100_000) + "\r\n"},
	{name: "long bulk", raw: "$200000\r\n" + strings.Repeat("y", 200_000) + "\r\n"},
}

func TestReplyFrames(t *testing.T) {
	t.Parallel()
	var stream strings.Builder
	for _, c := range replyCases {
		rr := newRESPReader(strings.NewReader(c.raw))
		f, err := rr.reply()
		require.NoError(t, err, c.name)
		require.Equal(t, c.raw, string(f.raw), c.name)
		require.Equal(t, c.push, f.push, c.name)
		_, err = rr.reply()
		require.ErrorIs(t, err, io.EOF, "%s: one frame, then the end", c.name)
		stream.WriteString(c.raw)
	}

	// All of them back to back, as a pipeline's replies come.
	rr := newRESPReader(strings.NewReader(stream.String()))
	for _, c := range replyCases {
		f, err := rr.reply()
		require.NoError(t, err, c.name)
		require.Equal(t, c.raw, string(f.raw), c.name)
	}
	_, err := rr.reply()
	require.ErrorIs(t, err, io.EOF)
}

func TestReplyTruncated(t *testing.T) {
	t.Parallel()
	for _, c := range replyCases {
		if len(c.raw) > 1000 {
			continue
		}
		for n := 1; n < len(c.raw); n++ {
			_, err := newRESPReader(strings.NewReader(c.raw[:n])).reply()
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, "%s cut after %d bytes", c.name, n)
		}
	}
	_, err := newRESPReader(strings.NewReader("")).reply()
	require.ErrorIs(t, err, io.EOF, "nothing at all is a clean end")
}

func TestReplyNotRESP(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"?1\r\n",           // unknown type
		"+OK\n",            // no CR
		"$3\r\nfoobar\r\n", // bulk longer than said
		"*x\r\n",           // bad length
		"*-2\r\n",          // bad length
		"\r\n",             // empty line
		"$?\r\n;3\r\nabc\r\n;0\r\n",
	} {
		_, err := newRESPReader(strings.NewReader(raw)).reply()
		require.True(t, errors.Is(err, errProtocol), "%q: got %v", raw, err)
	}
}

func TestRequestFrames(t *testing.T) {
	t.Parallel()
	reqs := []struct{ raw, name string }{
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "set"},
		{"*1\r\n$4\r\nPiNg\r\n", "ping"},
		{"*2\r\n$7\r\nevalsha\r\n$0\r\n\r\n", "evalsha"},
		{"PING\r\n", "ping"},
		{"  get  k\r\n", "get"},
		{"*0\r\n", ""},
	}
	var stream bytes.Buffer
	for _, r := range reqs {
		stream.WriteString(r.raw)
	}
	rr := newRESPReader(&stream)
	for _, r := range reqs {
		f, err := rr.request()
		require.NoError(t, err, r.raw)
		require.Equal(t, r.raw, string(f.raw))
		require.Equal(t, r.name, f.name, r.raw)
	}
	_, err := rr.request()
	require.ErrorIs(t, err, io.EOF)
}

package msgpackcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Error reports why data is not exactly one well-formed MessagePack value.
type Error struct {
	// Offset is the byte offset in data at which the problem was found.
	Offset int
	// Reason says what is wrong, without the offset.
	Reason string
	// Hint, when not empty, names the format data seems to be in instead,
	// such as "Nippy (Carmine's default encoding)", "JSON" or "text".
	Hint string
}

// Error returns the reason, the offset and the hint in one line.
func (e *Error) Error() string {
	s := fmt.Sprintf("msgpack: %s (at offset %d)", e.Reason, e.Offset)
	if e.Hint != "" {
		s += "; this looks like " + e.Hint
	}
	return s
}

// The problems walk finds.
const (
	problemTrailing = iota // n bytes after the value
	problemEnd             // data ends where owed values were expected
	problemInvalid         // the byte 0xc1
	problemHeader          // a header's n length bytes are cut, rest remain
	problemTypeByte        // an ext's type byte is missing
	problemPayload         // a payload of n bytes is cut, rest remain
	problemElements        // a container declares n, more than rest bytes
	problemOwed            // a container declares n, more than rest bytes with owed others
	problemDepth           // nesting past MaxDepth
)

// problem is what walk found wrong, in plain values: a walk of an ext
// payload, which fails as a rule, must not allocate an error to throw
// away. Scan describes the problem it reports.
type problem struct {
	what   int
	offset int    // where the value at fault starts
	c      byte   // its first byte
	n      uint64 // a count, as each problem says
	rest   int
	owed   int
}

// describe turns p into an Error with its reason.
func (p problem) describe() *Error {
	name := kindName(p.c)
	var reason string
	switch p.what {
	case problemTrailing:
		reason = plural(p.n, "trailing byte") + " after the first MessagePack value"
	case problemEnd:
		reason = "data ends where a value was expected"
		if p.owed > 1 {
			reason = fmt.Sprintf("data ends where %d more values were expected", p.owed)
		}
	case problemInvalid:
		reason = "byte 0xc1 is never used in MessagePack"
	case problemHeader:
		reason = fmt.Sprintf("%s header needs %d length bytes, but %s", name, p.n, remain(p.rest))
	case problemTypeByte:
		reason = fmt.Sprintf("%s header needs a type byte, but no bytes remain", name)
	case problemPayload:
		switch formats[p.c].kind {
		case kindFixed:
			reason = fmt.Sprintf("%s needs %d bytes after its first, but %s", name, p.n, remain(p.rest))
		case kindFixExt:
			reason = fmt.Sprintf("%s needs %s after its type byte, but %s", name, plural(p.n, "byte"), remain(p.rest))
		case kindExt:
			reason = fmt.Sprintf("%s declares %s after its type byte, but %s", name, plural(p.n, "byte"), remain(p.rest))
		default:
			reason = fmt.Sprintf("%s declares %s, but %s", name, plural(p.n, "byte"), remain(p.rest))
		}
	case problemElements:
		reason = fmt.Sprintf("%s declares %s, but %s to hold them", name, elements(formats[p.c].kind, p.n), remain(p.rest))
	case problemOwed:
		reason = fmt.Sprintf("%s declares %s; with the %d values still to come around it, that is more than the %d bytes that remain could hold",
			name, elements(formats[p.c].kind, p.n), p.owed, p.rest)
	default:
		reason = fmt.Sprintf("arrays and maps nest deeper than %d levels", MaxDepth)
	}
	return &Error{Offset: p.offset, Reason: reason}
}

// elements says how many elements an array or map declares, for errors.
func elements(kind uint8, count uint64) string {
	if kind == kindMap {
		return fmt.Sprintf("%s (%d keys and values)", plural(count, "entry"), 2*count)
	}
	return plural(count, "element")
}

// remain says how many bytes remain, for errors.
func remain(n int) string {
	switch n {
	case 0:
		return "no bytes remain"
	case 1:
		return "only 1 byte remains"
	}
	return fmt.Sprintf("only %d bytes remain", n)
}

func plural(n uint64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	if unit == "entry" {
		return fmt.Sprintf("%d entries", n)
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// guessFormat names the format data seems to be in when it is not
// MessagePack, or returns "". It runs only on refused data.
func guessFormat(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("NPY")) && len(data) >= 4:
		// Nippy's header: "NPY", then a byte of metadata.
		return "Nippy (Carmine's default encoding)"
	case looksLikeJSON(data):
		return "JSON"
	case looksLikeText(data):
		return "text"
	}
	return ""
}

// looksLikeJSON reports whether data is a JSON object or array; a bare
// JSON number or string is more likely plain text.
func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(data)
}

// looksLikeText reports whether data is non-empty UTF-8 made of printable
// characters and ordinary white space.
func looksLikeText(data []byte) bool {
	if len(data) == 0 || !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

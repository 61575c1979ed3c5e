package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// printJSON writes v as indented JSON, with any control or bidirectional
// formatting character that JSON leaves raw (DEL, C1 controls, U+202E) escaped,
// so that hostile message content cannot drive the reader's terminal.
func printJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := io.WriteString(w, escapeUnsafe(buf.String(), "\n"))
	return err
}

// unsafeRune tells whether r may change what a terminal shows beyond
// itself: a control character, a bidirectional formatting character, or
// the replacement of invalid UTF-8.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

// escapeUnsafe writes every unsafe rune of s but those in keep as a JSON
// escape (\u00XX).
func escapeUnsafe(s, keep string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unsafeRune(r) && !strings.ContainsRune(keep, r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) && !strings.ContainsRune(keep, r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// safeText is s for a table cell: as it is when every rune is printable,
// quoted with Go escapes otherwise (control characters, invalid UTF-8,
// spaces that would break a column).
func safeText(s string) string {
	for _, r := range s {
		if r == ' ' || !unicode.IsPrint(r) || unsafeRune(r) {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// quoteBytes shows at most limit stored bytes as a quoted Go string, with
// an ellipsis when there are more.
func quoteBytes(data []byte, limit int) string {
	if len(data) <= limit {
		return strconv.Quote(string(data))
	}
	return strconv.Quote(string(data[:limit])) + "..."
}

// jsonValue turns a decoded MessagePack value into one encoding/json can
// write: maps with keys other than strings get their keys written with
// fmt; everything else stays as it is ([]byte becomes base64, time.Time
// RFC 3339).
func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonValue(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonValue(e)
		}
		return out
	}
	return v
}

// contentText is a decoded value as compact JSON on one line, safe for a
// terminal; a value JSON cannot hold (NaN, say) is shown with fmt.
func contentText(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonValue(v)); err != nil {
		return safeText(fmt.Sprint(v))
	}
	return escapeUnsafe(strings.TrimSuffix(buf.String(), "\n"), "")
}

// truncate shortens s to at most n runes, ending in "..." when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// newTable is a tabwriter for aligned columns, flushed by the caller.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes cells as one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// duration shows d for people, rounded to what matters; "-" for none.
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// yesNo shows a bool for people.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// isTerminal tells whether r or w is a terminal (a character device).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package dashboard

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gocarmine/mq"
)

// Bounds of rendering one message's content.
const (
	// renderDepth is the deepest nesting rendered; deeper values show as
	// a marker. The codec allows 512 levels.
	renderDepth = 32
	// renderNodes is how many values one message renders at most.
	renderNodes = 5000
)

// renderValue renders a decoded message as indented JSON text of at most
// limit bytes (cut, and truncated true, beyond). Whatever the codec gave,
// the text is valid UTF-8 and the page shows it as text, never as markup.
func renderValue(v any, limit int) (string, bool) {
	budget := renderNodes
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the page shows it as text: keep < and > as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(jsonSafe(v, 0, &budget)); err != nil {
		return cut("cannot render: "+err.Error(), limit)
	}
	return cut(strings.TrimSuffix(b.String(), "\n"), limit)
}

// rawPreview renders undecodable stored bytes as a quoted Go string (every
// byte that is not printable ASCII escaped) of at most limit bytes.
func rawPreview(data []byte, limit int) (string, bool) {
	n := min(len(data), limit)
	q := strconv.QuoteToASCII(string(data[:n]))
	s, cutQ := cut(q, limit)
	return s, cutQ || n < len(data)
}

// cut shortens s to at most limit bytes, on a rune boundary.
func cut(s string, limit int) (string, bool) {
	if len(s) <= limit {
		return s, false
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}

// jsonSafe turns what a codec decodes into values encoding/json always
// encodes: maps with keys of any type get string keys, binary strings a
// hex rendering, NaN and infinities a name; nesting past renderDepth and
// values past the budget a marker.
func jsonSafe(v any, depth int, budget *int) any {
	*budget--
	if *budget < 0 {
		return "…"
	}
	if depth > renderDepth {
		return "… (nested deeper)"
	}
	switch x := v.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		if s, ok := x.(string); ok && !utf8.ValidString(s) {
			return binary([]byte(s))
		}
		return x
	case float32:
		return safeFloat(float64(x))
	case float64:
		return safeFloat(x)
	case []byte:
		return binary(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if *budget < 0 {
				break
			}
			out = append(out, jsonSafe(e, depth+1, budget))
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			if *budget < 0 {
				break
			}
			out[safeKey(k)] = jsonSafe(x[k], depth+1, budget)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if *budget < 0 {
				break
			}
			out[safeKey(fmt.Sprint(jsonSafe(k, depth+1, budget)))] = jsonSafe(e, depth+1, budget)
		}
		return out
	}
	// Other kinds (a custom codec's types): by reflection, for slices and
	// maps; anything else as its %v text.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, 0, rv.Len())
		for i := range rv.Len() {
			if *budget < 0 {
				break
			}
			out = append(out, jsonSafe(rv.Index(i).Interface(), depth+1, budget))
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			if *budget < 0 {
				break
			}
			out[safeKey(fmt.Sprint(it.Key().Interface()))] = jsonSafe(it.Value().Interface(), depth+1, budget)
		}
		return out
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return jsonSafe(rv.Elem().Interface(), depth+1, budget)
	}
	s, _ := cut(fmt.Sprintf("%v", v), 1024)
	return safeKey(s)
}

// safeKey makes s valid UTF-8.
func safeKey(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.QuoteToASCII(s)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func safeFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}

// binary renders bytes that are not text, up to 256 of them in hex.
func binary(b []byte) string {
	n := min(len(b), 256)
	s := fmt.Sprintf("binary, %d bytes: %s", len(b), hex.EncodeToString(b[:n]))
	if n < len(b) {
		s += "…"
	}
	return s
}

// isBadInput tells whether err is the library's refusal of bad input.
func isBadInput(err error) bool {
	return errors.Is(err, mq.ErrInvalidOption) || errors.Is(err, mq.ErrInvalidQueueName) || errors.Is(err, mq.ErrInvalidMessageID)
}

package keys

import "testing"

// The slots Redis's CLUSTER KEYSLOT answers for these keys.
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"":                 0,
		"foo":              12182,
		"123456789":        12739,
		"{user1000}.a":     3443,
		"a{user1000}.b":    3443,
		"foo{}{bar}":       8363,
		"foo{{bar}}zap":    4015,
		"foo{bar}{zap}":    5061,
		Key("q", true, 0):  Slot("q"),
		Key("q", true, 40): Slot("q"),
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}

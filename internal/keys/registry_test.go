package keys

import "testing"

func TestRegistryPatternMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "orders", true},
		{"*", "a/b:c", true},
		{"ord*", "orders", true},
		{"ord*", "email", false},
		{"*s", "orders", true},
		{"o?ders", "orders", true},
		{"o?ders", "oders", false},
		{"[eo]*", "email", true},
		{"[^eo]*", "email", false},
		{"[a-f]mail", "email", true},
		{"[a-d]mail", "email", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"orders", "orders", true},
		{"orders", "orders2", false},
		{"a**b", "axxb", true},
	} {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestRegistryPatternMember(t *testing.T) {
	for _, c := range []struct {
		member  string
		cluster bool
		want    string
		ok      bool
	}{
		{"orders", false, "orders", true},
		{"orders", true, "", false},
		{"{orders}", true, "orders", true},
		{"{orders}", false, "", false},
		{"{}", true, "", false},
	} {
		got, ok := QueueFromMember(c.member, c.cluster)
		if got != c.want || ok != c.ok {
			t.Errorf("QueueFromMember(%q, %v) = %q, %v; want %q, %v", c.member, c.cluster, got, ok, c.want, c.ok)
		}
	}
}

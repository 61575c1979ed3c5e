package keys

import "testing"

func TestQueueFromMessagesKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		cluster bool
		want    string // "" when the key is not of that layout
	}{
		{"carmine:mq:jobs:messages", false, "jobs"},
		{"carmine:mq:a:b:c:messages", false, "a:b:c"},
		{"carmine:mq:x:messages:messages", false, "x:messages"},
		{"carmine:mq:{jobs}:messages", false, ""},
		{"carmine:mq:a{b:messages", false, ""},
		{"carmine:mq::messages", false, ""},
		{"carmine:mq:jobs:messages-rq", false, ""},
		{"other:jobs:messages", false, ""},

		{"carmine:mq:{jobs}:messages", true, "jobs"},
		{"carmine:mq:{a:b}:messages", true, "a:b"},
		{"carmine:mq:jobs:messages", true, ""},
		{"carmine:mq:{}:messages", true, ""},
		{"carmine:mq:{a}b}:messages", true, ""},
		{"carmine:mq:{a}:{b}:messages", true, ""},
		{"carmine:mq:{{a}}:messages", true, ""},
		{"carmine:mq:{a}x:messages", true, ""},
	} {
		got, ok := QueueFromMessagesKey(tc.key, tc.cluster)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("QueueFromMessagesKey(%q, %v) = %q, %v; want %q", tc.key, tc.cluster, got, ok, tc.want)
		}
		if ok && Key(got, tc.cluster, Messages) != tc.key {
			t.Errorf("%q does not round-trip: Key gives %q", tc.key, Key(got, tc.cluster, Messages))
		}
	}
}

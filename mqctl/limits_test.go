package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gocarmine/mq"
)

// TestLimitsCommands: mqctl limits set, show and clear, as text and JSON;
// a bad rate is refused.
func TestLimitsCommands(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(t, "jobs", "a", "x")

	r := f.env.ok(t, "", "limits", "set", "jobs", "--rate", "100/1s+5", "--key-concurrency", "3")
	for _, want := range []string{"100/1s+5", "none", "3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("set shows no %q:\n%s", want, r.stdout)
		}
	}
	var v limitsView
	decode(t, f.env.ok(t, "", "limits", "show", "jobs", "--json"), &v)
	if v.Rate != "100/1s+5" || v.KeyRate != "none" || v.KeyConcurrency != 3 || v.Concurrency != 0 {
		t.Errorf("show --json: %+v", v)
	}
	st, err := f.client.Inspector().Limits(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Limits.Rate != (mq.Rate{N: 100, Per: time.Second, Burst: 5}) {
		t.Errorf("stored rate %+v", st.Limits.Rate)
	}

	f.env.ok(t, "", "limits", "clear", "jobs")
	decode(t, f.env.ok(t, "", "limits", "show", "jobs", "--json"), &v)
	if v.Rate != "none" || v.KeyConcurrency != 0 {
		t.Errorf("after clear: %+v", v)
	}
	if r := f.env.run(t, "", "limits", "set", "jobs", "--rate", "fast"); r.code == 0 || !strings.Contains(r.stderr, "rate") {
		t.Errorf("a bad rate: code %d, stderr %q", r.code, r.stderr)
	}
}

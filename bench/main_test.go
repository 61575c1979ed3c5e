package main

import (
	"strings"
	"testing"
)

func TestParseCase(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want caseSpec
	}{
		{"idle", caseSpec{name: "idle", scenario: "idle"}},
		{"idle+1M", caseSpec{name: "idle+1M", scenario: "idle", delayed: 1_000_000}},
		{"light+10k", caseSpec{name: "light+10k", scenario: "light", delayed: 10_000}},
		{"e2e-8+100k", caseSpec{name: "e2e-8+100k", scenario: "e2e", n: 8, delayed: 100_000}},
		{"e2e-1", caseSpec{name: "e2e-1", scenario: "e2e", n: 1}},
		{"enqueue-one", caseSpec{name: "enqueue-one", scenario: "enqueue-one"}},
		{"queues-100", caseSpec{name: "queues-100", scenario: "queues", n: 100}},
		{"idle+250", caseSpec{name: "idle+250", scenario: "idle", delayed: 250}},
	} {
		got, err := parseCase(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseCase(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"e2e", "idle-8", "enqueue-one+10k", "light+x", "light+-1", "nope", "queues"} {
		if got, err := parseCase(bad); err == nil {
			t.Errorf("parseCase(%q) = %+v, want an error", bad, got)
		}
	}
}

// TestRatioPairsRuns: a ratio is the median of per-run ratios, pairing
// mq's run i with the peer's run i, and skipping runs the peer lacks.
func TestRatioPairsRuns(t *testing.T) {
	o := &orchestrator{results: map[string]map[string][]measure{"k": {
		"mq":    {{run: 0, calls: 10}, {run: 1, calls: 40}, {run: 2, calls: 90}},
		"asynq": {{run: 0, calls: 10}, {run: 2, calls: 30}},
	}}}
	m := metric{key: "k", value: func(m measure) float64 { return float64(m.calls) }}
	// Pairs: run 0 gives 1, run 2 gives 3; run 1 has no peer. Ratio of
	// medians would be 40/20 = 2, the paired median is (1+3)/2 = 2 too, so
	// use an odd case as well.
	if r, ok := o.ratio(m, "asynq"); !ok || r != 2 {
		t.Errorf("ratio = %v, %v; want 2", r, ok)
	}
	o.results["k"]["asynq"] = append(o.results["k"]["asynq"], measure{run: 1, calls: 4})
	// Pairs now 1, 10, 3: median 3 (ratio of medians would be 40/10 = 4).
	if r, ok := o.ratio(m, "asynq"); !ok || r != 3 {
		t.Errorf("ratio = %v, %v; want 3", r, ok)
	}
	if _, ok := o.ratio(m, "bullmq"); ok {
		t.Error("ratio against a system without runs: ok")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 100_000: "100,000", 1_000_000: "1,000,000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestReportShowsCollectedThroughput: the backlog table has both
// throughputs, until handled and until collected, and a section is left
// out when its scenario did not run.
func TestReportShowsCollectedThroughput(t *testing.T) {
	c, _ := parseCase("e2e-8+10k")
	o := &orchestrator{base: driverArgs{n: 100, size: 100, batch: 10}, srv: nil, results: map[string]map[string][]measure{
		"e2e-8+10k/handled": {"mq": {{mark: mark{N: 100, Seconds: 1}}}, "asynq": {{mark: mark{N: 100, Seconds: 2}}}},
		"e2e-8+10k/clean":   {"mq": {{mark: mark{N: 100, Seconds: 4}}}, "asynq": {{mark: mark{N: 100, Seconds: 2}}}},
	}}
	var b strings.Builder
	for _, sec := range o.sections([]caseSpec{c}) {
		for _, m := range sec.rows {
			if _, ok := o.results[m.key]; ok {
				b.WriteString(sec.title + ": " + m.label + "\n")
			}
		}
	}
	got := b.String()
	for _, want := range []string{"msgs/s until handled", "msgs/s until collected"} {
		if !strings.Contains(got, want) {
			t.Errorf("rows lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Idle") {
		t.Errorf("rows of a scenario that did not run:\n%s", got)
	}
	clean := metric{key: "e2e-8+10k/clean", value: rate}
	if r, ok := o.ratio(clean, "asynq"); !ok || r != 0.5 {
		t.Errorf("collected ratio = %v, %v; want 0.5", r, ok)
	}
}

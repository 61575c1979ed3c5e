package protocol

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gocarmine/mq/lua"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestComposedScriptsGolden pins the text of every composed script: a change
// to a shared part shows up as a diff in each script that uses it.
// Run `go test -run Golden -update .` after a deliberate change.
func TestComposedScriptsGolden(t *testing.T) {
	for name, parts := range scriptParts {
		got := composeSource(parts...)
		path := filepath.Join("testdata", name+".lua.golden")
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test -run Golden -update . to create it)", name, err)
		}
		if got != string(want) {
			t.Errorf("composed %s script differs from %s; run go test -run Golden -update . if the change is meant", name, path)
		}
	}
}

// TestStatusWrittenOnce checks that the status computation is defined in
// one file only and reaches the scripts that need it by composition.
func TestStatusWrittenOnce(t *testing.T) {
	entries, err := lua.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, err := lua.FS.ReadFile(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		n := strings.Count(string(src), "local function message_status(")
		if want := map[bool]int{true: 1, false: 0}[e.Name() == "status.lua"]; n != want {
			t.Errorf("%s defines message_status %d times, want %d", e.Name(), n, want)
		}
	}
	for _, name := range []string{"enqueue", "dequeue", "msg-status"} {
		if n := strings.Count(composeSource(scriptParts[name]...), "local function message_status("); n != 1 {
			t.Errorf("composed %s defines message_status %d times, want 1", name, n)
		}
	}
}

// TestScriptsUseOnlyKeysFromKEYS guards the cluster rule: keys reach the
// scripts only through KEYS, bound to names once in the prelude, and no
// script builds a key name of its own.
func TestScriptsUseOnlyKeysFromKEYS(t *testing.T) {
	entries, err := lua.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, _ := lua.FS.ReadFile(e.Name())
		if strings.Contains(string(src), "carmine:") {
			t.Errorf("%s names a key prefix", e.Name())
		}
		if e.Name() != "prelude.lua" && strings.Contains(string(src), "KEYS[") {
			t.Errorf("%s reads KEYS directly; use the prelude's names", e.Name())
		}
	}
}

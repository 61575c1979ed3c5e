package protocol

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The scripts' files, read from the repository's lua/ directory: package
// mq embeds them, and this package's tests cannot import it.
func init() { Load(os.DirFS(filepath.Join("..", "..", "lua"))) }

// luaFileNames answers the names of the .lua files the scripts are
// composed from.
func luaFileNames(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(luaFiles, "*.lua")
	if err != nil || len(names) == 0 {
		t.Fatalf("no .lua files: %v", err)
	}
	return names
}

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

// TestStatusWrittenOnce checks that the status computation (§2) and the
// queue counts (§10) are each written once, in one Lua file, and reach the
// scripts that need them by composition: no other Lua file, and no Go file
// of the module, computes them again.
func TestStatusWrittenOnce(t *testing.T) {
	// Marks of each computation, and the one file that may hold them.
	marks := map[string]string{
		"local function message_status(": "status.lua",
		"local function status_name(":    "status.lua",
		"'done-awaiting-gc'":             "status.lua",
		"'sismember', K_REQUEUE":         "status.lua", // has_requeue
		"local function queue_counts(":   "counts.lua",
		"'hlen', K_MESSAGES":             "counts.lua",
		"'zcard', K_WINDOWS":             "counts.lua",
		"'hlen', K_LOCKS":                "counts.lua",
		"'hlen', K_BACKOFFS":             "counts.lua",
		"'scard', K_DONE":                "counts.lua",
	}
	for _, name := range luaFileNames(t) {
		src, err := fs.ReadFile(luaFiles, name)
		if err != nil {
			t.Fatal(err)
		}
		for mark, home := range marks {
			n := strings.Count(string(src), mark)
			if want := map[bool]int{true: 1, false: 0}[name == home]; n != want {
				t.Errorf("%s holds %q %d times, want %d", name, mark, n, want)
			}
		}
	}
	for _, name := range []string{"enqueue", "dequeue", "msg-status"} {
		if n := strings.Count(composeSource(scriptParts[name]...), "local function message_status("); n != 1 {
			t.Errorf("composed %s defines message_status %d times, want 1", name, n)
		}
	}
	for _, name := range []string{"dequeue", "queue-counts"} {
		if n := strings.Count(composeSource(scriptParts[name]...), "local function queue_counts("); n != 1 {
			t.Errorf("composed %s defines queue_counts %d times, want 1", name, n)
		}
	}

	// Go: no Lua pasted into Go, and no Go code that reads the keys the
	// formulas read in order to compute them again. Tests may read keys to
	// check state; the bench module runs Carmine's own scripts, on purpose.
	goMarks := []*regexp.Regexp{
		regexp.MustCompile(`redis\.call\(`),
		regexp.MustCompile(`\.(HLen|SCard|LLen)\([^)]*keys\.(Locks|Backoffs|Done|MidCircle)\b`),
		regexp.MustCompile(`\.(SIsMember|HGet|HExists)\([^)]*keys\.(Done|Locks|Backoffs|MessagesRQ|Requeue)\b`),
	}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bench" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if filepath.Dir(path) == filepath.Join(root, "internal", "protocol") {
			return nil // this package is where such reads belong
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, re := range goMarks {
			if m := re.Find(src); m != nil {
				t.Errorf("%s computes what the scripts compute once (%q); call internal/protocol instead", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSkipReasonsAreTheScripts: SkipReasons lists exactly the reasons of
// the skip steps dequeue.lua answers: those of its skip steps, and those
// finish (outcome.lua) answers for them.
func TestSkipReasonsAreTheScripts(t *testing.T) {
	src := composeSource(scriptParts["dequeue"]...)
	var got []string
	for _, m := range regexp.MustCompile(`\{'skip', '([a-z-]+)'\}|return '(did-[a-z]+)'`).FindAllStringSubmatch(src, -1) {
		reason := m[1] + m[2]
		if !slices.Contains(got, reason) {
			got = append(got, reason)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(SkipReasons))
	if !slices.Equal(got, want) {
		t.Errorf("dequeue.lua skips with %v, SkipReasons holds %v", got, SkipReasons)
	}
}

// TestScriptsUseOnlyKeysFromKEYS guards the cluster rule: keys reach the
// scripts only through KEYS, bound to names once in the prelude and
// prelude-ext.lua and prelude-limits.lua (or, for
// enqueue-new.lua, tick.lua and schedules.lua, composed with lib.lua alone,
// once at their top; followups.lua reads the keys of the queues follow-ups
// go to, after the queue's own, as KEYS[g + i] alone, §22), and no
// script builds a key name of its own.
func TestScriptsUseOnlyKeysFromKEYS(t *testing.T) {
	binds := map[string]bool{"prelude.lua": true, "prelude-ext.lua": true, "prelude-limits.lua": true, "enqueue-new.lua": true, "tick.lua": true, "schedules.lua": true}
	targets := regexp.MustCompile(`KEYS\[g( \+ [1-7])?\]`)
	for _, name := range luaFileNames(t) {
		src, _ := fs.ReadFile(luaFiles, name)
		if strings.Contains(string(src), "carmine:") {
			t.Errorf("%s names a key prefix", name)
		}
		if name == "followups.lua" {
			src = targets.ReplaceAll(src, nil)
		}
		if !binds[name] && strings.Contains(string(src), "KEYS[") {
			t.Errorf("%s reads KEYS directly; use the prelude's names", name)
		}
	}
	for name, parts := range scriptParts {
		if lib, _, _ := strings.Cut(parts[0], ":"); lib != "lib" {
			t.Errorf("%s is composed of %v: lib comes first, for every part after it", name, parts)
		}
		if (name == "enqueue-new" || name == "tick" || name == "schedules") && slices.Contains(parts, "prelude") {
			t.Errorf("%s is composed of %v: it binds its own keys, and the prelude would bind them again", name, parts)
		}
	}
}

// TestComposedLibSubset: a part "lib:f,g" keeps lib.lua's functions f and
// g and leaves out the others; a script calling one left out, or naming
// one lib.lua lacks, does not compose.
func TestComposedLibSubset(t *testing.T) {
	src := composeSource("lib:move_sentinel,receipt_put")
	for _, f := range []string{"move_sentinel", "receipt_put"} {
		assert.Contains(t, src, "local function "+f+"(")
	}
	for _, f := range []string{"receipt_get", "tagged_get", "server_now"} {
		assert.NotContains(t, src, "local function "+f+"(")
	}
	assert.Contains(t, src, "redis.replicate_commands()", "what is not a function stays")
	none := composeSource("lib:")
	assert.NotContains(t, none, "local function ", "lib: keeps no function")
	assert.Contains(t, none, "redis.replicate_commands()", "what is not a function stays")
	assert.NotContains(t, composeSource(scriptParts["enqueue-new"]...), "local function ",
		"enqueue-new.lua defines no function: each would be a closure made at every call")
	body := composeSource("enqueue-new")
	assert.NotContains(t, body, "redis.call(", "enqueue-new.lua looks redis.call up once, into a local")
	assert.Contains(t, body, "local call = redis.call\n")
	assert.Contains(t, body, "\nlocal ARGV, KEYS = ARGV, KEYS\n", "and binds ARGV and KEYS to locals")
	assert.Panics(t, func() { composeSource("lib:move_sentinel", "enqueue") }, "enqueue.lua calls receipt_get")
	assert.Panics(t, func() { composeSource("lib:no_such_function") })
	assert.Equal(t, composeSource("lib"), composeSource("lib:server_now,receipt_get,receipt_put,move_sentinel,tagged_get"),
		"every function kept: lib.lua as it is")
}

package release

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// A module of this repository: its path and its directory relative to the
// repository's root.
type module struct {
	path string
	dir  string
}

// published are the modules users install or import, in the order a user
// would meet them. bench and release are modules of the repository too,
// but nobody depends on them.
var published = []module{
	{"github.com/gocarmine/mq", "."},
	{"github.com/gocarmine/mq/dashboard", "dashboard"},
	{"github.com/gocarmine/mq/mqctl", "mqctl"},
	{"github.com/gocarmine/mq/mqprom", "mqprom"},
	{"github.com/gocarmine/mq/mqotel", "mqotel"},
}

// writeProxy writes, under dir, a module proxy in the layout of the GOPROXY
// protocol (https://go.dev/ref/mod#goproxy-protocol) that serves each
// module at version, made from the files under root: what the public proxy
// would serve once the repository is tagged, if the working tree were
// committed.
func writeProxy(dir, root, version string, mods []module) error {
	for _, m := range mods {
		if err := writeModule(dir, filepath.Join(root, m.dir), m.path, version); err != nil {
			return fmt.Errorf("%s: %w", m.path, err)
		}
	}
	return nil
}

// writeModule writes one module's list, .info, .mod and .zip files.
func writeModule(proxy, dir, modPath, version string) error {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	vdir := filepath.Join(proxy, filepath.FromSlash(escapePath(modPath)), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"list":            []byte(version + "\n"),
		version + ".info": info,
		version + ".mod":  gomod,
	} {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
			return err
		}
	}
	return writeZip(filepath.Join(vdir, version+".zip"), dir, modPath+"@"+version)
}

// writeZip writes the module zip of the module in dir: each of its files
// as prefix/path, leaving out what the go command leaves out of a module
// (https://go.dev/ref/mod#zip-files): version control directories,
// directories holding a module of their own (a go.mod), vendor
// directories, and anything but regular files.
func writeZip(file, dir, prefix string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			switch d.Name() {
			case ".git", ".hg", ".svn", ".bzr", "vendor":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a module of its own
			}
			return nil
		case d.Name() == ".git": // a worktree's .git file
			return nil
		case !d.Type().IsRegular():
			return nil
		}
		if err := checkFilePath(rel); err != nil {
			return err
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	for _, name := range names {
		if err := addFile(zw, filepath.Join(dir, filepath.FromSlash(name)), prefix+"/"+name); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// addFile copies the file src into zw as name.
func addFile(zw *zip.Writer, src, name string) error {
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	return err
}

// checkFilePath refuses the file names the go command refuses in a module
// zip, in short: so that a bad name fails here, by its name, and not later
// in the go command as a corrupt download.
func checkFilePath(rel string) error {
	for _, elem := range strings.Split(rel, "/") {
		if elem == "" || strings.HasSuffix(elem, ".") {
			return fmt.Errorf("file %q: empty or dot-ended path element", rel)
		}
		for _, r := range elem {
			if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-./_+,=#$@~ ", r)) {
				return fmt.Errorf("file %q: character %q is not allowed in a module file name", rel, r)
			}
		}
	}
	return nil
}

// escapePath is the module path as the proxy protocol spells it in URLs
// and directories: each upper-case letter as '!' and its lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// errNoRelease is reported when CHANGELOG.md names no released version.
var errNoRelease = errors.New("CHANGELOG.md has no section \"## [X.Y.Z] - DATE\" of a released version")

// releaseVersion is the version of the first "## [X.Y.Z]" section of the
// changelog: the version being released, or released last.
func releaseVersion(changelog string) (string, error) {
	for line := range strings.Lines(changelog) {
		rest, ok := strings.CutPrefix(line, "## [")
		if !ok {
			continue
		}
		v, _, ok := strings.Cut(rest, "]")
		if !ok || v == "Unreleased" {
			continue
		}
		if !isSemver(v) {
			return "", fmt.Errorf("CHANGELOG.md: section %q: %q is not a version X.Y.Z", strings.TrimSpace(line), v)
		}
		return "v" + v, nil
	}
	return "", errNoRelease
}

// isSemver reports whether v is three dot-separated decimal numbers.
func isSemver(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	return true
}

// goModProblems lists what in a published module's go.mod would stop a user
// who installs or imports it: a replace directive (refused by `go install
// ...@version`, and ignored in a dependency, so that what the repository
// builds is not what users get) or a requirement of one of this
// repository's modules at any version but the release's (a placeholder
// such as v0.0.0-00010101000000-000000000000 is not in any proxy).
func goModProblems(gomod, version string) []string {
	var problems []string
	inRequire := false
	for line := range strings.Lines(gomod) {
		line, _, _ = strings.Cut(line, "//")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "replace":
			problems = append(problems, "replace directive: "+strings.Join(fields, " "))
			continue
		case fields[0] == "require" && len(fields) > 1 && fields[1] == "(":
			inRequire = true
			continue
		case fields[0] == ")":
			inRequire = false
			continue
		case fields[0] == "require":
			fields = fields[1:]
		case !inRequire:
			continue
		}
		if len(fields) >= 2 && (fields[0] == "github.com/gocarmine/mq" || strings.HasPrefix(fields[0], "github.com/gocarmine/mq/")) && fields[1] != version {
			problems = append(problems, fmt.Sprintf("requires %s at %s, not the release's %s", fields[0], fields[1], version))
		}
	}
	return problems
}

func TestReleaseVersion(t *testing.T) {
	for _, tc := range []struct{ changelog, want string }{
		{"# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2027-01-02\n\n## [0.1.0] - 2026-12-06\n", "v0.2.0"},
		{"## [Unreleased]\n### Added\n- x\n", ""},
		{"## [0.1] - 2026-12-06\n", ""},
		{"## [v0.1.0] - 2026-12-06\n", ""},
	} {
		got, err := releaseVersion(tc.changelog)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("releaseVersion(%q) = %q, %v; want %q", tc.changelog, got, err, tc.want)
		}
	}
}

func TestGoModProblems(t *testing.T) {
	for _, tc := range []struct {
		gomod string
		want  int
	}{
		{"module github.com/gocarmine/mq/mqctl\n\ngo 1.26.0\n\nrequire (\n\tgithub.com/gocarmine/mq v0.1.0\n\tgithub.com/gocarmine/mq/dashboard v0.1.0 // indirect\n\tgithub.com/spf13/cobra v1.10.2\n)\n", 0},
		{"module m\n\nreplace (\n\tgithub.com/gocarmine/mq => ../\n)\n", 1},
		{"module m\n\nreplace github.com/gocarmine/mq => ../\n", 1},
		{"module m\n\nrequire github.com/gocarmine/mq v0.0.0-00010101000000-000000000000\n", 1},
		{"module m\n\nrequire (\n\tgithub.com/gocarmine/mq v0.1.0\n\tgithub.com/gocarmine/mq/dashboard v0.0.9\n)\n", 1},
		{"module m\n\nrequire github.com/gocarmine/mqx v0.0.1\n", 0},
	} {
		if got := goModProblems(tc.gomod, "v0.1.0"); len(got) != tc.want {
			t.Errorf("goModProblems(%q) = %q, want %d problem(s)", tc.gomod, got, tc.want)
		}
	}
}

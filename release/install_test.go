package release

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInstall installs the repository's modules as a user would, from a
// module proxy built from the working tree at the version CHANGELOG.md
// releases (so that it needs no git tag): `go install` of mqctl, `go get`
// of each library module alone in a new module, and a new program that
// imports them all, each with an empty module cache. It fails when a
// replace directive or a requirement of an unpublished version (such as
// the zero placeholder) is back in a go.mod.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mqctl and a program from a module proxy")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	version, err := releaseVersion(string(changelog))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installing %s", version)

	// What is wrong in a go.mod, said plainly. The go commands below fail
	// on it too, except on a replace directive of a library module: the go
	// command ignores those in a dependency, so only this check sees it.
	for _, m := range published {
		gomod, err := os.ReadFile(filepath.Join(root, m.dir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range goModProblems(string(gomod), version) {
			t.Errorf("%s/go.mod: %s", m.dir, p)
		}
	}

	tmp := t.TempDir()
	proxy := filepath.Join(tmp, "proxy")
	if err := writeProxy(proxy, root, version, published); err != nil {
		t.Fatal(err)
	}
	env := userEnv(t, tmp, proxy)

	// go install ...@version refuses a module with a replace directive, or
	// whose requirements are not in the proxy.
	gobin := filepath.Join(tmp, "bin")
	run(t, tmp, env, "go", "install", "github.com/gocarmine/mq/mqctl@"+version)
	help := run(t, tmp, env, filepath.Join(gobin, "mqctl"), "--help")
	if !strings.Contains(help, "mqctl looks at and administers") {
		t.Errorf("the installed mqctl's --help:\n%s", help)
	}

	// go get of each library alone: a requirement of a version no proxy
	// has fails here, where a program that also requires the core at the
	// release would hide it (the higher version wins).
	for _, m := range published {
		if m.dir == "mqctl" {
			continue
		}
		dir := newModule(t, tmp, "get-"+strings.ReplaceAll(m.dir, ".", "core"), env)
		run(t, dir, env, "go", "get", m.path+"@"+version)
	}

	// A new program that imports them all builds.
	dir := newModule(t, tmp, "program", env)
	write(t, filepath.Join(dir, "main.go"), program)
	args := []string{"get"}
	for _, m := range published {
		if m.dir != "mqctl" {
			args = append(args, m.path+"@"+version)
		}
	}
	run(t, dir, env, "go", args...)
	run(t, dir, env, "go", "build", "-o", filepath.Join(tmp, "program.bin"), ".")
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "github.com/gocarmine/mq "+version) {
		t.Errorf("the program's go.mod does not require the core at %s:\n%s", version, gomod)
	}
}

// program is a new user's program that imports the core and the three
// library modules.
const program = `package main

import (
	"fmt"

	"github.com/gocarmine/mq"
	"github.com/gocarmine/mq/dashboard"
	"github.com/gocarmine/mq/mqotel"
	"github.com/gocarmine/mq/mqprom"
)

var (
	_ = dashboard.New
	_ = mqprom.NewQueueCollector
	_ = mqotel.NewProducer
)

func main() {
	fmt.Println("mq", mq.Version)
}
`

// userEnv is the environment of a user with an empty module cache and
// GOPATH under tmp, who downloads this repository's modules from the proxy
// under proxy and every other module from this machine's module cache or,
// failing that, its GOPROXY. The build cache is this machine's: it is
// keyed by content, and sharing it keeps the test quick.
func userEnv(t *testing.T, tmp, proxy string) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "-json", "GOPROXY", "GOMODCACHE", "GOCACHE", "GOSUMDB").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	var host struct{ GOPROXY, GOMODCACHE, GOCACHE, GOSUMDB string }
	if err := json.Unmarshal(out, &host); err != nil {
		t.Fatal(err)
	}
	proxies := []string{fileURL(proxy), fileURL(filepath.Join(host.GOMODCACHE, "cache", "download"))}
	if host.GOPROXY != "" {
		proxies = append(proxies, host.GOPROXY)
	}
	set := map[string]string{
		"GOENV":       "off", // no go env -w settings of this machine's user
		"GOWORK":      "off",
		"GOTOOLCHAIN": "local",
		"GOPATH":      filepath.Join(tmp, "gopath"),
		"GOMODCACHE":  filepath.Join(tmp, "gopath", "pkg", "mod"),
		"GOBIN":       filepath.Join(tmp, "bin"),
		"GOCACHE":     host.GOCACHE,
		"GOPROXY":     strings.Join(proxies, ","),
		// Only this repository's modules are kept out of the checksum
		// database, which does not know them; the others are checked.
		"GONOSUMDB":  "github.com/gocarmine/mq",
		"GOSUMDB":    host.GOSUMDB,
		"GONOPROXY":  "",
		"GOPRIVATE":  "",
		"GOINSECURE": "",
		// -modcacherw: the module cache is removed with tmp.
		"GOFLAGS": "-mod=mod -modcacherw -trimpath",
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, ok := set[k]
		return ok
	})
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// fileURL is the file:// URL of the directory dir.
func fileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// newModule makes a directory under tmp holding a new module.
func newModule(t *testing.T, tmp, name string, env []string) string {
	t.Helper()
	dir := filepath.Join(tmp, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dir, env, "go", "mod", "init", "example.com/"+name)
	return dir
}

// run runs a command in dir with env and answers its output; it ends the
// test if the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %.1fs", filepath.Base(name), strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", filepath.Base(name), strings.Join(args, " "), dir, err, out.String())
	}
	return out.String()
}

// write writes a file, or ends the test.
func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

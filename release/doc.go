// Package release holds TestInstall, which checks that this repository's
// modules install as a user installs them: it builds a Go module proxy
// from the working tree at the version CHANGELOG.md releases last, then
// runs `go install github.com/gocarmine/mq/mqctl@VERSION` and `go get` of
// each library module against it, with a fresh module cache. It is a
// module of its own so that no user downloads it; scripts/test.sh runs it,
// and scripts/release.sh before it creates the tags.
package release

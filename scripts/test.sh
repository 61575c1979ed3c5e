#!/usr/bin/env bash
# The project's single test command: go vet, gofmt check, then the whole test
# suite with the race detector against real, throwaway redis-server processes
# (see internal/redistest; tests never use the Redis on port 6379).
#
# Usage: scripts/test.sh [go test flags...]
#   e.g. scripts/test.sh -run TestEnqueue -v
# Extra arguments are passed to go test before ./...
#
# Works on a fresh Debian/Ubuntu machine with only Go installed: installs
# redis-server, chromium (for the dashboard's browser test) and gcc (needed
# by -race) with apt-get when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# apt_install PKG... installs Debian packages, with sudo when not root.
apt_install() {
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			echo "test.sh: need to install $* but not root and sudo is missing" >&2
			exit 1
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: need to install $* but apt-get is missing; install them yourself" >&2
		exit 1
	fi
	echo "test.sh: installing $*" >&2
	"${sudo[@]}" apt-get update
	# The redis-server package may start a service on 6379; the tests never use it.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

missing=()
if ! command -v redis-server >/dev/null 2>&1; then
	missing+=(redis-server)
fi
# The dashboard's browser test drives Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
	missing+=(chromium)
fi
# -race needs cgo, hence a C compiler.
if ! command -v "$(go env CC)" >/dev/null 2>&1; then
	missing+=(gcc libc6-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	apt_install "${missing[@]}"
fi

# Tests that need Redis fail instead of skipping when it is missing.
export MQ_REQUIRE_REDIS=1
# -race needs cgo, which Go turns off when it found no C compiler before.
export CGO_ENABLED=1

# The core module is vetted and tested alone (GOWORK=off), with the
# requirements of its own go.mod as its users get them; the other modules
# below are tested in the workspace of go.work, against this working tree's
# core. In either mode ./... holds one module's packages only.
echo "test.sh: go vet" >&2
GOWORK=off go vet ./...

echo "test.sh: gofmt" >&2
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "test.sh: these files are not gofmt-ed (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "test.sh: go test" >&2
GOWORK=off go test -race -count=1 -timeout 15m "$@" ./...

# The benchmark harness is a module of its own (it needs asynq and BullMQ):
# check that it still builds against the library, and test its report.
echo "test.sh: bench" >&2
(cd bench && go vet ./... && go test -race -count=1 ./...)

echo "test.sh: mqctl" >&2
(cd mqctl && go vet ./... && go test -race -count=1 ./...)

echo "test.sh: dashboard" >&2
(cd dashboard && go vet ./... && MQ_REQUIRE_BROWSER=1 go test -race -count=1 ./...)

echo "test.sh: mqprom" >&2
(cd mqprom && go vet ./... && go test -race -count=1 ./...)

echo "test.sh: mqotel" >&2
(cd mqotel && go vet ./... && go test -race -count=1 ./...)

# The example service is a module of its own (it needs the dashboard and
# mqprom): it runs, briefly, on an embedded Redis.
echo "test.sh: examples/service" >&2
(cd examples/service && go vet ./... && go test -race -count=1 ./...)

# The modules install as a user installs them: from a module proxy built
# from this working tree, with a fresh module cache (release/install_test.go).
echo "test.sh: install" >&2
(cd release && go vet ./... && go test -count=1 -timeout 30m ./...)

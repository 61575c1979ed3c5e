#!/usr/bin/env bash
# Makes the tags of a release, after checking that the working tree is ready
# for it. It pushes nothing: it prints the command that does.
#
# Usage: scripts/release.sh [--dry-run] VERSION
#   e.g. scripts/release.sh --dry-run v0.1.0
#
# A release is ready when, at a clean HEAD:
#   - CHANGELOG.md's first versioned section is "## [X.Y.Z] - DATE";
#   - mq.go's Version is "X.Y.Z";
#   - every go.mod requires this repository's modules at vX.Y.Z, and go.work
#     replaces vX.Y.Z with the local directories;
#   - release/install_test.go installs the modules at vX.Y.Z from a module
#     proxy made from the tree (no replace directive, no placeholder).
# Then each published module gets its tag: vX.Y.Z for the core at the
# root, DIR/vX.Y.Z for the module in DIR (Go's convention for a repository
# of several modules), annotated, at HEAD.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

dry_run=false
if [ "${1:-}" = "--dry-run" ]; then
	dry_run=true
	shift
fi
if [ $# -ne 1 ] || ! [[ "$1" =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
	echo "usage: scripts/release.sh [--dry-run] vX.Y.Z" >&2
	exit 2
fi
version="$1"
plain="${version#v}"

# The modules users install or import, by directory; "." is the core.
modules=(. dashboard mqctl mqprom mqotel)

fail() {
	echo "release.sh: $*" >&2
	exit 1
}

if [ -n "$(git status --porcelain)" ]; then
	$dry_run || fail "the working tree has changes; commit them first"
	echo "release.sh: (dry run) the working tree has changes" >&2
fi

first="$(grep -m1 -E '^## \[[0-9]+\.[0-9]+\.[0-9]+\]' CHANGELOG.md || true)"
[[ "$first" == "## [$plain] - "* ]] ||
	fail "CHANGELOG.md's first release section is \"$first\", not \"## [$plain] - DATE\""

grep -qx "const Version = \"$plain\"" mq.go ||
	fail "mq.go's Version is not \"$plain\": $(grep -m1 '^const Version' mq.go)"

for dir in "${modules[@]}" bench examples/service; do
	while read -r path ver; do
		[ "$ver" = "$version" ] || fail "$dir/go.mod requires $path $ver, not $version"
	done < <(awk '$1 ~ /^github\.com\/gocarmine\/mq(\/|$)/ && $2 ~ /^v/ {print $1, $2}
		$1 == "require" && $2 ~ /^github\.com\/gocarmine\/mq(\/|$)/ {print $2, $3}' "$dir/go.mod")
done
while read -r path ver; do
	[ "$ver" = "$version" ] || fail "go.work replaces $path $ver, not $version"
done < <(awk '$1 ~ /^github\.com\/gocarmine\/mq(\/|$)/ && $3 == "=>" {print $1, $2}' go.work)

echo "release.sh: installing $version from a module proxy of the tree" >&2
(cd release && go test -count=1 -run 'TestInstall$' ./...)

tags=()
paths=()
for dir in "${modules[@]}"; do
	if [ "$dir" = . ]; then
		tags+=("$version")
		paths+=(github.com/gocarmine/mq)
	else
		tags+=("$dir/$version")
		paths+=("github.com/gocarmine/mq/$dir")
	fi
done
for tag in "${tags[@]}"; do
	if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
		fail "tag $tag exists already"
	fi
done

head="$(git rev-parse --short HEAD)"
for i in "${!tags[@]}"; do
	tag="${tags[$i]}"
	if $dry_run; then
		echo "would tag $tag at $head"
	else
		git tag -a "$tag" -m "${paths[$i]} $version" HEAD
		echo "tagged $tag at $head"
	fi
done
echo "to publish: git push origin ${tags[*]}"

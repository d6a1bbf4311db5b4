#!/bin/bash
# build-deb.sh - build the yolo Debian package (debian/) from a clean copy
# of the committed tree (HEAD: no build directories, no uncommitted
# changes), fail on any lintian error, and print the .deb's path.  CI runs
# it.  The .deb, its -dbgsym, .buildinfo and .changes go to --out DIR
# (default: a new directory under /tmp).  The build log goes to stderr;
# debian/rules says there which libfuse yolofs links (the private one when
# scripts/fetch-libfuse.sh has built it, else Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
case ${1:-} in
--out) out=${2:?"--out needs a directory"} ;;
'') out=$(mktemp -d /tmp/yolo-deb.XXXXXX) ;;
*) echo "usage: ${0##*/} [--out DIR]" >&2; exit 2 ;;
esac
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d /tmp/yolo-deb-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
git archive --prefix=yolo/ HEAD | tar -x -C "$work"
# Which commit the package holds (/usr/share/doc/yolo/git-commit):
# scripts/setup.sh rebuilds it when HEAD moves.
git rev-parse HEAD >"$work/yolo/debian/git-commit"
# dpkg-buildpackage writes its results next to the tree.
(cd "$work/yolo" && dpkg-buildpackage -us -uc -b) >&2
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/

version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
lintian -i --fail-on error "$out/yolo_${version}_${arch}.changes" >&2
echo "$out/yolo_${version}_${arch}.deb"

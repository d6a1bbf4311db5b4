#!/bin/bash
# fetch-libfuse.sh - a private libfuse >= 3.16 for yolofs on Debian 12, never
# replacing the system's.  Prints the prefix it lives in (for meson's
# -Dfuse_prefix); scripts/setup.sh calls it.  With --print-prefix it only
# prints the prefix when it is built already (exit 1 when not), never
# downloading or building: debian/rules asks that way.
#
# Why: kernel FUSE passthrough (fuse_passthrough_open, FUSE_CAP_PASSTHROUGH)
# needs libfuse 3.16; Debian 12 ships 3.14.  Debian 13's fuse3 source
# package builds on Debian 12 as it is (meson, no new build dependencies).
#
# What: Debian 13 (trixie)'s fuse3 source package, version pinned, unpacked
# with Debian's patches applied (dpkg-source -x), the library and headers
# alone built with meson and installed into
#   DIR/fuse3-VERSION/{include,lib}  (DIR: $YOLO_LIBFUSE_CACHE, default
#                                     /var/cache/yolo/libfuse)
# outside the clone, so every clone and CI run on a machine shares one
# build.  It is a static library: yolofs links it in (meson.build) and
# needs nothing of DIR at run time.  Its mount code looks for
# fusermount3 in the prefix's bin/ first, then on PATH: the system's fuse3
# package provides it, and yolofs, as root, mounts without it.
# DIR/fuse3-VERSION/.stamp names the source (the .dsc's SHA-256) and the
# build options; a matching stamp means "built", so a second run only
# prints the prefix.  Everything is built in DIR/.build.XXXXXX and renamed
# into place at the end, holding an exclusive flock on DIR/.build.lock.
#
# How the download is checked: apt itself, with a private configuration (its
# own sources list naming only trixie's deb-src, its own lists and cache
# dirs; the system's apt sources stay untouched).  apt-get update verifies
# trixie's InRelease against the Debian archive keyring and the Sources
# index against InRelease's hashes; apt-get source --download-only checks
# each file against Sources; dpkg-source -x checks the tarballs against the
# .dsc.  This script also pins the .dsc's SHA-256, so a changed archive is
# noticed.  When trixie replaces this version (a point release) the pinned
# one leaves the archive and this script fails: update VERSION and
# DSC_SHA256 from trixie's Sources.
set -euo pipefail

VERSION=3.17.2-3
DSC_SHA256=1339847e7e6512f31d61cf1fe4598341c4b8aa43ea6dc546914b21f96f29deb3
# Only the library, static: yolofs carries it and needs nothing of this
# cache at run time (an installed or packaged yolofs works on a machine
# that never ran this script).  No fusermount3 (it would want setuid root
# and udev rules installed into the system), no examples, no tests.
MESON_OPTIONS=(--libdir=lib -Dbuildtype=release -Ddefault_library=static
	-Dutils=false -Dexamples=false -Dtests=false)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

prog=${0##*/}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"

print_only=false
case ${1:-} in
--print-prefix) print_only=true ;;
'') ;;
*) die "usage: $prog [--print-prefix]" ;;
esac

CACHE=${YOLO_LIBFUSE_CACHE:-/var/cache/yolo/libfuse}
if $print_only; then
	[[ -d $CACHE ]] || exit 1
else
	mkdir -p "$CACHE" 2>/dev/null || die "cannot create $CACHE (run as root, or set YOLO_LIBFUSE_CACHE)"
fi
CACHE=$(cd "$CACHE" && pwd)
PREFIX=$CACHE/fuse3-$VERSION
STAMP="fuse3 $VERSION dsc-sha256 $DSC_SHA256 meson ${MESON_OPTIONS[*]}"

built() { [[ -f $PREFIX/.stamp && $(cat "$PREFIX/.stamp") == "$STAMP" ]]; }

if $print_only; then
	built || exit 1
	echo "$PREFIX"
	exit 0
fi
if ! built; then
	exec 9>"$CACHE/.build.lock"
	flock 9
fi
if built; then
	echo "$PREFIX"
	exit 0
fi
[[ -r $KEYRING ]] || die "$KEYRING missing (package debian-archive-keyring)"

TMP=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
LOG=$TMP/log
# fail WHAT: the step's log, then die.
fail() { tail -n 30 "$LOG" >&2; die "$1 failed (log above)"; }

say "fetching Debian's fuse3 $VERSION source (trixie)"
mkdir -p "$TMP"/apt/{lists/partial,cache/archives/partial,sources.list.d,preferences.d} "$TMP/dl"
echo "deb-src [signed-by=$KEYRING] $(debian_mirror) trixie main" >"$TMP/apt/sources.list"
# Downloads land in dirs only root can write, so apt does not hand them to
# its _apt sandbox user.
APT=(apt-get -q
	-o Dir::Etc::sourcelist="$TMP/apt/sources.list"
	-o Dir::Etc::sourceparts="$TMP/apt/sources.list.d"
	-o Dir::Etc::preferencesparts="$TMP/apt/preferences.d"
	-o Dir::State::lists="$TMP/apt/lists"
	-o Dir::Cache="$TMP/apt/cache"
	-o APT::Sandbox::User=root)
"${APT[@]}" update >"$LOG" 2>&1 || fail "apt-get update (trixie's signed index)"
(cd "$TMP/dl" && "${APT[@]}" source --download-only "fuse3=$VERSION") >>"$LOG" 2>&1 ||
	fail "apt-get source fuse3=$VERSION"
DSC=$TMP/dl/fuse3_$VERSION.dsc
echo "$DSC_SHA256  $DSC" | sha256sum --status -c - ||
	die "${DSC##*/} does not have the pinned SHA-256: the archive changed; check it, then update DSC_SHA256"
# dpkg-source warns that it cannot check the uploader's signature on the
# .dsc (no Debian developer keyring here); the .dsc came verified through
# the signed index above.
dpkg-source -x "$DSC" "$TMP/src" >>"$LOG" 2>&1 || fail "dpkg-source -x"

say "building libfuse $VERSION into $PREFIX"
(cd "$TMP/src" && meson setup "$TMP/build" --prefix="$PREFIX" "${MESON_OPTIONS[@]}") >>"$LOG" 2>&1 ||
	fail "meson setup"
ninja -C "$TMP/build" >>"$LOG" 2>&1 || fail "ninja"
DESTDIR=$TMP/stage meson install -C "$TMP/build" >>"$LOG" 2>&1 || fail "meson install"
echo "$STAMP" >"$TMP/stage$PREFIX/.stamp"
rm -rf "$PREFIX"
mv "$TMP/stage$PREFIX" "$PREFIX"
echo "$PREFIX"

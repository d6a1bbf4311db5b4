#!/bin/bash
# ctr-image.sh - the root file systems of the container-start benchmark
# (bench/bench --containers): Debian 12 minbase plus one package set each,
# as tarballs for `docker import`, cached outside the repository.
#
#   bench/ctr-image.sh [--out DIR] [--mirror URL] [--force] NAME "PACKAGES"
#
# Writes DIR/NAME.tar (default DIR: $YOLO_CTR_CACHE or /var/cache/yolo/ctr-images)
# and DIR/NAME.stamp, written last, whose text is the recipe (script
# version, suite, packages): a matching stamp means "cached", so a build
# runs once per recipe (about a minute with the .debs cached in DIR/.debs).
# How: debootstrap --variant=minbase --include=PACKAGES (debootstrap fakes
# start-stop-daemon, so no service starts on the build host), then what
# Debian's own container images leave out: /dev's nodes (docker mounts its
# own /dev), apt's lists and caches, logs.  The benchmark makes its
# distinct variants from one tarball by adding a file at import.
# Needs root (debootstrap).  Prints the tarball's path.
set -euo pipefail

VERSION=1
SUITE=bookworm
prog=ctr-image
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

OUT=${YOLO_CTR_CACHE:-/var/cache/yolo/ctr-images}
MIRROR=${YOLO_DEBIAN_MIRROR:-}
FORCE=0
args=()
while (($#)); do
	case $1 in
	--out) OUT=${2:?--out needs a directory}; shift 2 ;;
	--mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
	--force) FORCE=1; shift ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) args+=("$1"); shift ;;
	esac
done
((${#args[@]} == 2)) || die "usage: $0 [--out DIR] [--mirror URL] [--force] NAME \"PACKAGES\""
NAME=${args[0]}
[[ $NAME =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "bad NAME '$NAME' (lower-case letters, digits, . _ -)"
[[ ${args[1]} =~ ^[A-Za-z0-9.+\ -]+$ ]] || die "bad PACKAGES '${args[1]}'"
read -r -a pkgs <<<"${args[1]}"
PKGS=${pkgs[*]}

# The mirror: whatever this machine's apt uses for Debian main.  It is not
# part of the recipe.
# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/debian-mirror.sh"
[[ -n $MIRROR ]] || MIRROR=$(debian_mirror)

RECIPE="ctr-image v$VERSION suite=$SUITE variant=minbase include=$PKGS"
TAR=$OUT/$NAME.tar
STAMP=$OUT/$NAME.stamp
cached() { [[ -s $TAR && -f $STAMP && $(cat "$STAMP") == "$RECIPE" ]]; }
if ((!FORCE)) && cached; then
	echo "$TAR"
	exit 0
fi
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || {
	say "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
		die "apt-get install debootstrap failed"
}
mkdir -p "$OUT"
chmod 0755 "$OUT"
# One build per cache directory at a time; a waiter then finds it cached.
exec 9>"$OUT/.build.lock"
flock 9
if ((!FORCE)) && cached; then
	echo "$TAR"
	exit 0
fi

TMP=$(mktemp -d "$OUT/.$NAME.build.XXXXXX")
ROOTFS=$TMP/root
START=$SECONDS
CHILD=""
cleanup() {
	local rc=$? m
	if [[ -n $CHILD ]]; then
		kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	for m in $(findmnt -rn -o TARGET | grep "^$ROOTFS/" | sort -r); do umount -l "$m" 2>/dev/null || true; done
	if findmnt -rn -o TARGET | grep -q "^$ROOTFS/"; then
		echo "$prog: something is still mounted under $ROOTFS; not removing $TMP" >&2
	else
		rm -rf --one-file-system "$TMP"
	fi
	((rc == 0)) || echo "$prog: build of $NAME failed (exit $rc) after $((SECONDS - START)) s" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT/.debs"
say "debootstrap $SUITE minbase + $PKGS from $MIRROR"
# Its own process group, waited for with `wait` so a signal reaches the trap.
setsid --wait debootstrap --variant=minbase --include="${PKGS// /,}" --cache-dir="$OUT/.debs" \
	"$SUITE" "$ROOTFS" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 &
CHILD=$!
rc=0
wait "$CHILD" || rc=$?
CHILD=""
((rc == 0)) || { tail -n 30 "$TMP/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

rm -rf "$ROOTFS"/dev/* "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
	"$ROOTFS"/var/lib/apt/lists/*_* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
	"$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/etc/resolv.conf
echo "$NAME" >"$ROOTFS/etc/hostname"
tar --numeric-owner -C "$ROOTFS" -cf "$TMP/root.tar" .

rm -f "$STAMP"
mv -f "$TMP/root.tar" "$TAR"
echo "$RECIPE" >"$TMP/stamp"
mv -f "$TMP/stamp" "$STAMP"
say "built $TAR ($(du -m "$TAR" | cut -f1) MiB) in $((SECONDS - START)) s"
echo "$TAR"

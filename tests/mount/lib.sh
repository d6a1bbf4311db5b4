# lib.sh - shared helpers of the mount suite (sourced by test_*.sh).
# Every test runs as root on real FUSE mounts under one mktemp -d directory,
# exits 77 when a facility is missing, and unmounts everything in its trap.
# The integration suite sources this file too, so skip() here is both
# suites' one skip.
set -u

# skip REASON: exit 77 (meson: SKIP).  Under CI (CI=true, .ci/run) the
# machine is the README's, which has every tool and facility the suites use
# (scripts/setup.sh): a skip there means a test that silently did not run,
# so it fails instead.
skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL (CI): would skip: $*" >&2
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}
fail() { echo "FAIL: $*" >&2; [ -s "${TMP:-/nonexistent}/yolofs.log" ] && tail -n 20 "$TMP/yolofs.log" >&2; exit 1; }
note() { echo "--- $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
[ -n "${YOLOFS:-}" ] && [ -x "$YOLOFS" ] || fail "YOLOFS is not set (run through meson test)"
command -v findmnt >/dev/null || skip "findmnt is missing"
HELPERS=$(dirname "$RWSTRESS")   # rwstress, xattr, seekcopy live together
for h in rwstress xattr seekcopy craftimage eiofs; do [ -x "$HELPERS/$h" ] || { echo "FAIL: test helper $h not built" >&2; exit 1; }; done

# Under a directory only root can change: yolofs loads only boot images
# nobody else could have written (every directory up to / included), and
# /tmp is writable by everyone.
TEST_ROOT=${YOLO_TEST_ROOT:-/var/lib/yolo-tests}
mkdir -p -m 0755 "$TEST_ROOT" || fail "cannot create $TEST_ROOT"
TMP=$(mktemp -d "$TEST_ROOT/yolofs-test.XXXXXX")
PIDS=()        # yolofs daemons, in start order
MNTS=()        # their mountpoints
EXTRA_MNTS=()  # other mounts (overlay), unmounted first
LATE_MNTS=()   # mounts under the daemons (a source file system), unmounted after them

cleanup() {
	local i
	for ((i = ${#EXTRA_MNTS[@]} - 1; i >= 0; i--)); do
		umount "${EXTRA_MNTS[i]}" 2>/dev/null || umount -l "${EXTRA_MNTS[i]}" 2>/dev/null
	done
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null && wait "${PIDS[i]}" 2>/dev/null
		while findmnt -n -t fuse.yolofs -M "${MNTS[i]}" >/dev/null 2>&1; do
			umount -l "${MNTS[i]}" 2>/dev/null || break
		done
	done
	for ((i = ${#LATE_MNTS[@]} - 1; i >= 0; i--)); do
		umount "${LATE_MNTS[i]}" 2>/dev/null || umount -l "${LATE_MNTS[i]}" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

is_mounted() { findmnt -n -t fuse.yolofs -M "$1" >/dev/null 2>&1; }

# yolofs_start SOURCE MOUNTPOINT [yolofs options...]: mount in the
# background (foreground mode, log in $TMP/yolofs.log) and wait for it.
# YOLOFS_WRAP, if set, is a command that execs the daemon (its words
# split), e.g. YOLOFS_WRAP="prlimit --nofile=1024:1024".
yolofs_start() {
	local src=$1 mnt=$2 i
	shift 2
	${YOLOFS_WRAP:-} "$YOLOFS" -f "$@" "$src" "$mnt" 2>>"$TMP/yolofs.log" &
	PIDS+=($!)
	MNTS+=("$mnt")
	for i in $(seq 200); do
		is_mounted "$mnt" && return 0
		kill -0 "${PIDS[-1]}" 2>/dev/null || fail "yolofs exited at startup: $(tail -n 3 "$TMP/yolofs.log")"
		sleep 0.05
	done
	fail "yolofs did not mount $mnt"
}

# yolofs_stop: SIGTERM the most recent daemon; it must unmount and exit 0.
yolofs_stop() {
	local pid=${PIDS[-1]} mnt=${MNTS[-1]} rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	unset 'PIDS[-1]' 'MNTS[-1]'
	[ "$rc" = 0 ] || fail "yolofs exited with status $rc after SIGTERM"
	! is_mounted "$mnt" || fail "$mnt still mounted after SIGTERM"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# fuse_abort MAJ:MIN: abort the FUSE connection of that device (its
# mount's `findmnt -no MAJ:MIN`, spaces and all), so that callers waiting
# on requests no daemon will answer get an error (fusectl, mounted here if
# needed).
fuse_abort() {
	local c=/sys/fs/fuse/connections minor=${1##*:}
	minor=${minor//[[:space:]]/}
	[ -n "$minor" ] || fail "fuse_abort: no device in '$1'"
	[ -e "$c/$minor" ] || mountpoint -q $c || mount -t fusectl fusectl $c 2>/dev/null
	[ -e "$c/$minor/abort" ] || fail "fuse_abort: no FUSE connection $minor"
	echo 1 >"$c/$minor/abort"
}

# metric NAME FILE: sum of a counter over all images in a metrics file (0
# while the file is not written yet).
metric() {
	[ -f "$2" ] || { echo 0; return; }
	awk -v n="yolofs_$1_total" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }' "$2"
}

# gauge NAME FILE: sum of a gauge over its series in a metrics file.
gauge() {
	[ -f "$2" ] || { echo 0; return; }
	awk -v n="yolofs_$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }' "$2"
}

# image_metric NAME IMAGE GENERATION FILE: one image's counter or gauge
# (NAME as written, e.g. hits_total or image_in_memory).
image_metric() {
	awk -v k="yolofs_$1{image=\"$2\",generation=\"$3\"}" '$1 == k { v = $2 } END { print v + 0 }' "$4"
}

# wait_until DESCRIPTION 'CODE': evaluate CODE (quoted, so it is expanded
# afresh each time) until it succeeds, for up to 15 s.
wait_until() {
	local _what=$1 _code=$2 _i
	for _i in $(seq 150); do
		eval "$_code" && return 0
		sleep 0.1
	done
	fail "timed out waiting until $_what"
}

# memory_usage FILE: "resident unique logical vmlck_kib" of the block store
# of the most recent daemon (metrics FILE) and its locked memory.
memory_usage() {
	echo "$(gauge memory_resident_bytes "$1") $(gauge memory_unique_bytes "$1")" \
	     "$(gauge memory_logical_bytes "$1") $(awk '/^VmLck:/ { print $2 }' "/proc/${PIDS[-1]}/status")"
}

# dedup_table "USAGE WITH DEDUP" "USAGE WITHOUT": both memory_usage lines
# side by side and the saving.
dedup_table() {
	printf "%-9s %14s %14s %14s %12s\n" "" resident unique logical VmLck_KiB
	printf "%-9s %14s %14s %14s %12s\n" dedup $1 no_dedup $2
	awk -v d="${1%% *}" -v n="${2%% *}" 'BEGIN { printf "dedup: %.2f MiB instead of %.2f MiB, %.1f%% saved\n",
		d / 1048576, n / 1048576, 100 * (n - d) / n }'
}

# served FILE: image blocks served through the read path plus bytes pushed
# into the kernel page cache at open (prefill); > 0 when the image was used.
served() {
	echo $(($(metric hits "$1") + $(metric bytes_prefilled "$1")))
}

# tree_listing DIR: one line per entry with the stat fields that must be
# equal through the mount (path type mode uid gid size mtime inode nlink
# rdev target) plus xattrs; inode numbers are included unless NOINO=1,
# modification times unless NOTIME=1.
tree_listing() {
	local dir=$1 fmt='%P %y %m %U %G %s %n %l'
	[ "${NOINO:-0}" = 1 ] || fmt="$fmt %i"
	[ "${NOTIME:-0}" = 1 ] || fmt="$fmt %T@"
	(cd "$dir" && find . -mindepth 1 -printf "$fmt\n" | LC_ALL=C sort)
	(cd "$dir" && find . -mindepth 1 \( -type c -o -type b \) -printf '%P\n' | LC_ALL=C sort |
		while read -r p; do echo "$p rdev $(stat -c '%t:%T' "$p")"; done)
	(cd "$dir" && find . -mindepth 1 ! -type l -printf '%P\n' | LC_ALL=C sort |
		"$HELPERS/xattr" dump-lines)
}

# same_tree A B: listings and the contents of every regular file agree.
same_tree() {
	local a=$1 b=$2
	tree_listing "$a" >"$TMP/list.a"
	tree_listing "$b" >"$TMP/list.b"
	diff -u "$TMP/list.a" "$TMP/list.b" >&2 || fail "tree listing of $b differs from $a"
	(cd "$a" && find . -type f -printf '%P\n') | /usr/bin/python3 -c '
import filecmp, sys
a, b = sys.argv[1:3]
for f in sys.stdin.read().splitlines():
    if not filecmp.cmp(a + "/" + f, b + "/" + f, shallow=False):
        sys.exit("%s differs" % f)' "$a" "$b" || fail "file contents of $b differ from $a"
}

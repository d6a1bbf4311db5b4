#!/bin/bash
# Never stale, never another file's bytes: each case makes the same
# operations on a loop-mounted ext4 source directly and compares what a
# root process sees there (ext4 is the reference) with what it sees through
# the yolofs mount (a separate directory), after the namespace answers of a
# captured boot image were learned:
#   1 a hard link made after load, then chmod/write/chown/utime/user xattr/
#     security.capability through the new name, seen through the old one
#   2 a lazily opened descriptor after unlink + a new file that reuses the
#     inode number (captured and uncaptured ranges, fstat)
#   3 fchmod/fchown/write through open_by_handle_at (disconnected dentries)
#   4 a tmpfs and a bind mount over recorded paths after load, and a bind
#     mount present at load removed after it
#   5 fstat of an old lazy descriptor after a SIGHUP reload
#   6 fstat, lseek and reads of a lazy descriptor renamed over or unlinked
#   7 ls -lR of 3,000 and 100,000 entries with a 1024-descriptor soft limit
# Cases 1-6 run with timeout=0 and with the default options (checks wait
# past the 1 s attribute timeout), each on its own files (never_stale.py),
# and check again after echo 3 > drop_caches.  NEVER_STALE_ALL=1 runs every
# case and lists every failing one (exit 1) instead of stopping at the first;
# NEVER_STALE_CASES="1 2 ..." and NEVER_STALE_MODES="t0 def" choose cases
# and modes, NEVER_STALE_NOFILE=SOFT:HARD replaces case 7's limits.
# Not vacuous: every recorded path must be learned ("N of N namespace paths
# answered from memory" in the log), >= 20 answers given per mode
# (yolofs_ns_answered_total), opens through the mount must be lazy (the
# daemon holds no non-O_PATH descriptor of the file after the open), the
# inode number must be reused in case 2 (unless the daemon still holds the
# old file), dentries must be disconnected in case 3, and case 5 waits for
# the daemon's "reload: " log line.
. "$(dirname "$0")/lib.sh"
for t in mkfs.ext4 losetup prlimit; do
	command -v $t >/dev/null || skip "$t is missing"
done
PY=/usr/bin/python3
[ -x $PY ] || skip "$PY is missing"
HELPER=$(cd "$(dirname "$0")" && pwd)/never_stale.py
MODES=${NEVER_STALE_MODES:-t0 def}
CASES=${NEVER_STALE_CASES:-1 2 3 4 5 6 7}
FAILED=()

# case_fail MESSAGE: fail now, or (NEVER_STALE_ALL=1) note it and go on.
case_fail() {
	[ "${NEVER_STALE_ALL:-0}" = 1 ] || fail "$*"
	echo "FAIL: $*" >&2
	FAILED+=("$*")
}

# stop_daemon WHAT: SIGTERM the most recent daemon; it must unmount and exit 0.
stop_daemon() {
	local pid=${PIDS[-1]} mnt=${MNTS[-1]} rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	unset 'PIDS[-1]' 'MNTS[-1]'
	if [ "$rc" != 0 ] || is_mounted "$mnt"; then
		umount -l "$mnt" 2>/dev/null
		case_fail "$1: yolofs exited with status $rc after SIGTERM"
	fi
}

has_case() { [[ " $CASES " == *" $1 "* ]]; }

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
# 1 KiB blocks: 100,000 small files take 100 MiB, not 400.
truncate -s 1G "$TMP/src.img"
mkfs.ext4 -q -F -b 1024 -N 160000 "$TMP/src.img" || fail "mkfs.ext4"
mount -o loop "$TMP/src.img" "$SRC" || skip "cannot loop-mount ext4 here"
LATE_MNTS+=("$SRC")
$PY "$HELPER" setup "$SRC" $MODES || fail "setting up the cases"
if has_case 7; then
	$PY - "$SRC" <<'PY' || fail "creating the directories of case 7"
import os, sys
for name, n in (("c7.a", 3000), ("c7.b", 100000)):
    d = os.path.join(sys.argv[1], name)
    os.mkdir(d)
    for i in range(n):
        fd = os.open("%s/f%06d" % (d, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
PY
fi
for m in $MODES; do                 # case 4c: bound over a recorded directory before capture
	mount --bind "$SRC/c4c.$m/alt" "$SRC/c4c.$m/d" || fail "bind mount"
	LATE_MNTS+=("$SRC/c4c.$m/d")
done

note "capture: ls -l, cat and head of the cases' files"
"$YOLO_CAPTURE" -q -o "$TMP/ns.yolo" "$SRC" -- $PY "$HELPER" capture "$SRC" $MODES 2>"$TMP/capture.err" ||
	{ cat "$TMP/capture.err"; fail "capture"; }
"$YOLO_IMAGE" inspect --namespace "$TMP/ns.yolo" >"$TMP/inspect" || fail "inspect"
paths=$(awk '/^namespace:/ { print $2 }' "$TMP/inspect")
grep '^namespace:' "$TMP/inspect"
min=$((30 * $(echo $MODES | wc -w)))    # 36 per mode
[ "${paths:-0}" -ge $min ] || fail "the image records ${paths:-0} namespace paths, expected >= $min"

declare -A TITLE=(
	[1]="a hard link made after load: changes through the new name"
	[2]="a lazy descriptor after inode-number reuse"
	[3]="changes through open_by_handle_at (disconnected dentries)"
	[4]="mounts and umounts over parts of the source after load"
	[5]="fstat of an old lazy descriptor after a SIGHUP reload"
	[6]="a lazy descriptor renamed over or unlinked: fstat, lseek, reads"
)
NS_CASES=$(echo " $CASES " | sed 's/ 7 / /')
[ -n "${NS_CASES// }" ] || MODES=""
for mode in $MODES; do
	opts="images=$TMP/ns.yolo,metrics=$TMP/m.$mode.prom,metrics_interval=1"
	[ "$mode" = t0 ] && opts="$opts,timeout=0"
	note "mode $mode: yolofs -o $opts"
	before=$(grep -c 'namespace paths answered from memory' "$TMP/yolofs.log" 2>/dev/null)
	yolofs_start "$SRC" "$MNT" -o "$opts"
	wait_until "the answers are learned" \
		"[ \$(grep -c 'namespace paths answered from memory' '$TMP/yolofs.log') -gt ${before:-0} ]"
	line=$(grep -o '[0-9]* of [0-9]* namespace paths answered from memory' "$TMP/yolofs.log" | tail -n1)
	echo "$line"
	known=${line%% *}
	# Every recorded path is learned (a path absent now is an answer too).
	[ "$known" = "$paths" ] || fail "mode $mode: $known of $paths paths learned, expected all"
	drop_caches
	for c in $NS_CASES; do
		note "case $c ($mode): ${TITLE[$c]}"
		rc=0
		$PY "$HELPER" case "$c" "$SRC" "$MNT" "$mode" "${PIDS[-1]}" "$TMP/yolofs.log" 2>"$TMP/case.err" || rc=$?
		cat "$TMP/case.err" >&2
		[ "$rc" = 0 ] || case_fail "case $c ($mode): $(grep -m1 -o 'DIFF: .*' "$TMP/case.err" ||
			tail -n1 "$TMP/case.err") ($(grep -c 'DIFF: ' "$TMP/case.err") differences)"
	done
	sleep 1.2                        # one more metrics write
	answered=$(metric ns_answered "$TMP/m.$mode.prom")
	echo "answered from memory: $answered, asked of the source: $(metric ns_unknown "$TMP/m.$mode.prom")," \
	     "dropped: $(metric ns_dropped "$TMP/m.$mode.prom")"
	[ "$answered" -ge 20 ] || fail "mode $mode: only $answered questions answered from memory: the cases tested no answers"
	stop_daemon "mode $mode"
done

# case7 DIR NOFILE: ls -lR of SRC/DIR through a daemon started under
# prlimit --nofile=NOFILE: exit 0 and the source's own output.
case7() {
	local dir=$1 nofile=$2 rc=0 t0
	note "case 7: ls -lR of $dir ($(find "$SRC/$dir" -mindepth 1 -maxdepth 1 | wc -l) entries), daemon under prlimit --nofile=$nofile"
	YOLOFS_WRAP="prlimit --nofile=$nofile" yolofs_start "$SRC" "$MNT" -o "images=$TMP/ns.yolo"
	grep -E '^Max open files' "/proc/${PIDS[-1]}/limits"
	(cd "$SRC/$dir" && LC_ALL=C ls -lR .) >"$TMP/ls.src" || fail "ls -lR of the source"
	t0=$(date +%s.%N)
	(cd "$MNT/$dir" && LC_ALL=C ls -lR .) >"$TMP/ls.mnt" 2>"$TMP/ls.err" || rc=$?
	echo "ls -lR through the mount: exit $rc in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s," \
	     "$(wc -l <"$TMP/ls.err") lines on stderr$( [ -s "$TMP/ls.err" ] && echo ", first: $(head -n1 "$TMP/ls.err")")"
	if [ "$rc" != 0 ]; then
		case_fail "case 7 ($dir, nofile $nofile): ls -lR through the mount exited $rc: $(head -n1 "$TMP/ls.err")"
	elif ! cmp -s "$TMP/ls.src" "$TMP/ls.mnt"; then
		diff "$TMP/ls.src" "$TMP/ls.mnt" | head -n 5 >&2
		case_fail "case 7 ($dir, nofile $nofile): ls -lR through the mount differs from the source's"
	fi
	stop_daemon "case 7 ($dir, nofile $nofile)"
}
if has_case 7; then
	case7 c7.a ${NEVER_STALE_NOFILE:-1024:1024}
	case7 c7.b ${NEVER_STALE_NOFILE:-1024:1024}
	case7 c7.b ${NEVER_STALE_NOFILE:-1024:}
fi

if [ ${#FAILED[@]} -gt 0 ]; then
	echo "${#FAILED[@]} failing:" >&2
	printf '  %s\n' "${FAILED[@]}" >&2
	exit 1
fi
echo PASS

#!/bin/bash
# Command line and lifecycle: --help, rejected options, bad sources and
# missing images= paths fail with one clear line, a non-zero exit and
# nothing mounted (a bad image file is refused alone: the daemon starts);
# SIGUSR1 logs statistics; SIGTERM and SIGINT unmount and exit 0.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
head -c 100000 /dev/urandom >"$SRC/file"
"$MKIMAGE" "$TMP/ok.yolo" "$SRC" file || fail "mkimage"

"$YOLOFS" --help >"$TMP/help" 2>&1 || fail "--help failed"
grep -q "images=PATH" "$TMP/help" || fail "--help does not describe images="

# must_fail WHAT ARGS...: non-zero exit, a message, nothing mounted.
must_fail() {
	local what=$1 rc=0
	shift
	timeout 10 "$YOLOFS" -f "$@" >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$what: exit status $rc"
	[ "$(wc -l <"$TMP/out")" = 1 ] || fail "$what: expected one line, got: $(cat "$TMP/out")"
	! is_mounted "$MNT" || { umount "$MNT"; fail "$what: left a mount behind"; }
	echo "$what -> $(head -n 1 "$TMP/out")"
}
must_fail "unknown option" -o no_such_option "$SRC" "$MNT"
must_fail "bad serve mode" -o serve=floppy "$SRC" "$MNT"
must_fail "bad memlimit" -o memlimit=lots "$SRC" "$MNT"
must_fail "missing source" "$TMP/nonexistent" "$MNT"
must_fail "missing mountpoint" "$SRC"
must_fail "missing image" -o images="$TMP/none.yolo" "$SRC" "$MNT"
# A bad image file is refused alone, even the only one named (the daemon
# serves the source; test_hostile_start.sh covers the kinds of damage).
head -c 4096 /dev/urandom >"$TMP/garbage.yolo"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o images="$TMP/garbage.yolo"
cmp "$MNT/file" "$SRC/file" || fail "garbage image: the source reads wrong"
yolofs_stop
[ "$(grep -c "image $TMP/garbage.yolo refused: " "$TMP/yolofs.log")" = 1 ] ||
	fail "garbage image: expected one refusal line: $(cat "$TMP/yolofs.log")"
echo "garbage image -> served the source; $(grep -m1 refused "$TMP/yolofs.log")"
# A damaged data byte does not stop the start (blocks are checked at first
# use and by a background pass): it is reported, and its block is read from
# the source.
cp "$TMP/ok.yolo" "$TMP/flipped.yolo"
printf '\xff' | dd of="$TMP/flipped.yolo" bs=1 seek=5000 conv=notrunc status=none   # a data byte
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o images="$TMP/flipped.yolo"
cmp "$MNT/file" "$SRC/file" || fail "a damaged image block was served"
wait_until "the damage is reported" 'grep -q "1 blocks do not match their checksums" "$TMP/yolofs.log"'
yolofs_stop

for sig in TERM INT; do
	"$YOLOFS" -f -o images="$TMP/ok.yolo" "$SRC" "$MNT" 2>"$TMP/log" & pid=$!
	PIDS+=($pid) MNTS+=("$MNT")
	for i in $(seq 100); do is_mounted "$MNT" && break; sleep 0.05; done
	is_mounted "$MNT" || fail "did not mount"
	cmp "$MNT/file" "$SRC/file" || fail "read"
	if [ $sig = TERM ]; then
		# The kernel starts a FUSE mount at 128 KiB; yolofs raises it.
		ra=$(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb")
		[ "$ra" = 1024 ] || fail "readahead window $ra KiB, expected the default 1024"
		kill -USR1 $pid
		for i in $(seq 50); do grep -q "hits" "$TMP/log" && break; sleep 0.1; done
		grep -Eq "stats: .*(hits [1-9]|prefilled [1-9])" "$TMP/log" || fail "SIGUSR1 did not log statistics"
	fi
	kill -$sig $pid
	rc=0; wait $pid || rc=$?
	unset 'PIDS[-1]' 'MNTS[-1]'
	[ $rc = 0 ] || fail "exit status $rc after SIG$sig"
	! is_mounted "$MNT" || fail "still mounted after SIG$sig"
done

# Daemon mode (no -f): mounts, then unmounts on SIGTERM.
"$YOLOFS" -o images="$TMP/ok.yolo",readahead=256K "$SRC" "$MNT" || fail "daemon mode start"
is_mounted "$MNT" || fail "daemon mode did not mount"
ra=$(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb")
[ "$ra" = 256 ] || fail "readahead=256K gave a $ra KiB window"
cmp "$MNT/file" "$SRC/file" || fail "daemon mode read"
pid=$(pgrep -n -f "^$YOLOFS -o images=$TMP/ok.yolo,readahead=256K") || fail "daemon not found"
kill -TERM "$pid"
for i in $(seq 100); do is_mounted "$MNT" || break; sleep 0.05; done
! is_mounted "$MNT" || fail "daemon mode still mounted after SIGTERM"
echo PASS

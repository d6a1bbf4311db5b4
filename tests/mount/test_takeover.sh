#!/bin/bash
# Upgrade in place (`yolofs --upgrade MOUNTPOINT`): the running daemon
# starts the binary installed at its path, which takes the session over, under
# I/O that must not notice (takeover_load.py: a held descriptor read at
# random, the same with O_DIRECT, a held shared mapping faulted in again
# and again, a held writer fsync'ing and checking each block on the
# source, and a namespace loop of create/stat/list/rename/unlink).  The
# source holds a file an image serves (its opens keep the daemon's read
# path) and files no image covers (passthrough opens).
#  A. 20 upgrades in a row: each answered "ok" with its pause and the new
#     daemon's PID, the old one gone, 0 errors and 0 wrong bytes in every
#     loop, the counters continuing (takeovers 20).
#  B. A new binary that would answer the kernel's INIT otherwise (another
#     readahead) refuses the session and the old daemon serves on; the
#     command fails naming why.  A binary that cannot be exec'd: the same.
#     Back to the right binary, an upgrade works again.
#  D. Learning: a boot being learnt when an upgrade comes is ended and its
#     image written before the hand-over, and the successor serves it.
#  C. The mutant: the same upgrades with the resend notification dropped
#     (LD_PRELOAD noresend) must be caught: requests the old daemon read
#     but never answered leave their callers hanging.
# Restarts after a crash (systemd's descriptor store) are tested in the
# integration suite (integration-takeover).
. "$(dirname "$0")/lib.sh"

[ -n "${NORESEND:-}" ] && [ -f "$NORESEND" ] || fail "NORESEND is not set (run through meson test)"
LOAD="/usr/bin/python3 $(dirname "$0")/takeover_load.py"
SRC=$TMP/src MNT=$TMP/mnt IMAGES=$TMP/images BIN=$TMP/bin
mkdir -p "$SRC/meta" "$MNT" "$IMAGES" "$BIN"
head -c $((64 << 20)) /dev/urandom >"$SRC/disk"
head -c $((16 << 20)) /dev/urandom >"$SRC/served"
head -c $((16 << 20)) /dev/urandom >"$SRC/held"
"$MKIMAGE" "$IMAGES/boot.yolo" "$SRC" served || fail "mkimage"
cp "$YOLOFS" "$BIN/yolofs.real"
ln -s yolofs.real "$BIN/yolofs"
LOADERS=()
# The loops stop at their stop file, which goes with $TMP: end them first.
trap 'kill -KILL "${LOADERS[@]}" 2>/dev/null; cleanup' EXIT

# start_load NAME: the five loops, until $TMP/NAME.stop exists.
start_load() {
	local name=$1
	LOADERS=()
	rm -f "$TMP/$name.stop"
	for m in read direct mmap; do
		$LOAD $m "$MNT/disk" "$SRC/disk" "$TMP/$name.stop" >"$TMP/$name.$m" 2>&1 &
		LOADERS+=($!)
	done
	$LOAD read "$MNT/served" "$SRC/served" "$TMP/$name.stop" >"$TMP/$name.served" 2>&1 &
	LOADERS+=($!)
	$LOAD write "$MNT/held" "$SRC/held" "$TMP/$name.stop" >"$TMP/$name.write" 2>&1 &
	LOADERS+=($!)
	$LOAD meta "$MNT/meta" "$SRC/meta" "$TMP/$name.stop" >"$TMP/$name.meta" 2>&1 &
	LOADERS+=($!)
	sleep 1
}
# stop_load NAME: stop the loops; @return how many failed or hung (not
# finished within 20 s).  A caller whose request the daemon read and never
# answered cannot even be killed until the session ends: the hung ones are
# SIGKILLed and left in HUNG, to be reaped once the daemon is gone.
HUNG=()
stop_load() {
	local name=$1 bad=0 p i
	touch "$TMP/$name.stop"
	for i in $(seq 200); do
		local alive=0
		for p in "${LOADERS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${LOADERS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -KILL "$p" 2>/dev/null
			HUNG+=("$p")
			bad=$((bad + 1))
		elif ! wait "$p"; then
			bad=$((bad + 1))
		fi
	done
	cat "$TMP/$name".{read,direct,mmap,served,write,meta} 2>/dev/null | sed 's/^/  /'
	return $bad
}

# running PID: alive and not a zombie (an old daemon's parent is gone, and
# whoever inherits it may reap it late).
running() { [ -e "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# upgrade WHAT: one upgrade that must succeed; the daemon's PID (PIDS[-1])
# becomes the successor's and its pause is added to PAUSES.
PAUSES=()
upgrade() {
	local out old=${PIDS[-1]} new p i
	out=$(timeout 120 "$BIN/yolofs" --upgrade "$MNT") || fail "$1: $out"
	new=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$out")
	p=$(sed -n 's/.*paused \([0-9.]*\) ms.*/\1/p' <<<"$out")
	[ -n "$new" ] && [ -n "$p" ] || fail "$1: no pid or pause in '$out'"
	kill -0 "$new" || fail "$1: the new daemon $new is not running"
	for i in $(seq 100); do running "$old" || break; sleep 0.05; done
	! running "$old" || fail "$1: the old daemon $old did not leave"
	wait "$old" 2>/dev/null
	PIDS[-1]=$new
	PAUSES+=("$p")
}
# stop_daemon: SIGTERM the daemon (not this shell's child after an
# upgrade); it must unmount and exit.
stop_daemon() {
	local pid=${PIDS[-1]} i
	kill -TERM "$pid"
	for i in $(seq 200); do running "$pid" || break; sleep 0.05; done
	! running "$pid" || fail "the daemon $pid did not exit after SIGTERM"
	wait "$pid" 2>/dev/null
	! is_mounted "$MNT" || fail "$MNT still mounted after SIGTERM"
	unset 'PIDS[-1]' 'MNTS[-1]'
}

note "A. 20 upgrades in a row under load"
YOLOFS=$BIN/yolofs yolofs_start "$SRC" "$MNT" -o "images=$IMAGES,allow_other,metrics=$TMP/m.prom,metrics_interval=1"
start_load a
for i in $(seq 20); do
	upgrade "upgrade $i"
	sleep 0.3
done
stop_load a || fail "A: $? of the I/O loops failed or hung across the upgrades"
is_mounted "$MNT" || fail "A: not mounted after the upgrades"
grep -c "took the session over from the previous yolofs" "$TMP/yolofs.log" | grep -qx 20 ||
	fail "A: the log does not show 20 takeovers"
sleep 1.5
[ "$(metric takeovers "$TMP/m.prom")" = 20 ] || fail "A: takeovers counter $(metric takeovers "$TMP/m.prom"), not 20"
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "A: the image served nothing"
printf '%s\n' "${PAUSES[@]}" | sort -n | awk '{ v[NR] = $1 } END {
	printf "20 upgrades, 0 errors: pause median %.1f ms, max %.1f ms\n", (v[10] + v[11]) / 2, v[NR] }'

note "B. a successor that refuses, a binary that cannot run"
start_load b
# Another readahead window changes the INIT reply the kernel already got.
printf '#!/bin/sh\nexec %s -o readahead=64K "$@"\n' "$BIN/yolofs.real" >"$BIN/yolofs.other"
chmod 755 "$BIN/yolofs.other"
mv -f "$BIN/yolofs.other" "$BIN/yolofs"
out=$("$YOLOFS" --upgrade "$MNT" 2>&1) && fail "B: an upgrade to a refusing binary succeeded: $out"
grep -q "refused the session: this yolofs would answer the kernel's INIT differently" <<<"$out" ||
	fail "B: the command did not say why: $out"
kill -0 "${PIDS[-1]}" || fail "B: the daemon is gone"
echo "refused: $out"
printf 'not a program\n' >"$BIN/yolofs.broken"
chmod 644 "$BIN/yolofs.broken"
mv -f "$BIN/yolofs.broken" "$BIN/yolofs"
out=$("$YOLOFS" --upgrade "$MNT" 2>&1) && fail "B: an upgrade to a broken binary succeeded: $out"
grep -q "cannot exec" <<<"$out" || fail "B: the command did not say why: $out"
kill -0 "${PIDS[-1]}" || fail "B: the daemon is gone"
echo "broken: $out"
ln -sf yolofs.real "$BIN/yolofs"
upgrade "B: the upgrade after the failed ones"
stop_load b || fail "B: $? of the I/O loops failed or hung"
stop_daemon

note "D. a learning session in progress is written at an upgrade"
mkdir -m 0755 "$TMP/learn"
YOLOFS=$BIN/yolofs yolofs_start "$SRC" "$MNT" -o "learn=$TMP/learn,learn_idle=600,learn_window=600,allow_other"
head -c $((4 << 20)) "$MNT/disk" >/dev/null || fail "D: read"
[ -z "$(find "$TMP/learn" -name '*.yolo')" ] || fail "D: an image was written before the upgrade"
upgrade "D: the upgrade"
img=$(find "$TMP/learn" -name 'disk.*.yolo')
[ -n "$img" ] || fail "D: no image of the session in progress after the upgrade"
grep -q "image $img: .* loaded" "$TMP/yolofs.log" || fail "D: the successor did not load $img"
echo "learnt at the upgrade: $(basename "$img")"
stop_daemon

note "C. the mutant without resend is caught"
rm -rf "$SRC/meta"/*
LD_PRELOAD=$NORESEND YOLOFS=$BIN/yolofs yolofs_start "$SRC" "$MNT" -o "images=$IMAGES,allow_other"
start_load c
for i in $(seq 10); do
	out=$(timeout 20 "$BIN/yolofs" --upgrade "$MNT")
	new=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$out")
	[ -n "$new" ] && PIDS[-1]=$new
	sleep 0.3
done
stop_load c && fail "C: the upgrades without resend went unnoticed (the test cannot tell)"
echo "caught: $? of the I/O loops failed or hung without resend"
# The hung callers wait in the kernel for answers nobody will send (and
# may hold up the exit of the daemons before this one): end the session.
fuse_abort "$(findmnt -no MAJ:MIN "$MNT")"
stop_daemon
for p in "${HUNG[@]}"; do wait "$p" 2>/dev/null; done
echo PASS

#!/bin/bash
# Integrity that holds in every mode:
#  A. Started in the background (no -f, as fstab and the README start it),
#     the daemon's memory is pinned: VmLck > 0 and equal to what the
#     metrics report (which reads it from the kernel).
#  B. A boot image overwritten, then truncated, under a running daemon
#     (serve=ssd): every read still returns the source's bytes, the bad
#     blocks are logged a bounded number of times, and after a few the file
#     is no longer served from that image (one line, a metric).
#  C. A crafted image whose block is flagged all-zero but whose checksum is
#     not that of zeros: the block is never served as zeros, in memory, ssd
#     and prefill modes alike.
#  D. A source read that fails part way (EIO after some bytes) reaches the
#     reader as EIO, never as an early end of file, with and without a
#     boot image.
#  E. serve=ssd's prefill, which reads stretches of consecutive blocks of
#     the image file in one read: one damaged block in the middle of a
#     stretch is never pushed into the page cache (the source's bytes are
#     read instead), and the rest of the stretch is.
. "$(dirname "$0")/lib.sh"
SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"

note "A: memory pinned when started in the background"
head -c 16777216 /dev/urandom >"$SRC/base.img"
"$MKIMAGE" "$TMP/a.yolo" "$SRC" base.img || fail "mkimage"
"$YOLOFS" -o "images=$TMP/a.yolo,metrics=$TMP/a.prom,metrics_interval=1" "$SRC" "$MNT" \
	|| fail "yolofs did not start in the background"
pid=$(pgrep -n -f "^$YOLOFS -o images=$TMP/a.yolo") || fail "no background daemon"
PIDS+=("$pid") MNTS+=("$MNT")        # stopped and unmounted by the cleanup if A fails
is_mounted "$MNT" || fail "not mounted"
sleep 1.5
vmlck=$(awk '/^VmLck:/ { print $2 * 1024 }' "/proc/$pid/status")
reported=$(gauge memory_pinned_bytes "$TMP/a.prom")
echo "VmLck $vmlck bytes, metrics say $reported bytes pinned"
[ "$vmlck" -ge 16777216 ] || fail "the background daemon has not pinned the image (VmLck $vmlck)"
[ "$vmlck" = "$reported" ] || fail "metrics report $reported pinned bytes, the kernel $vmlck"
cmp "$MNT/base.img" "$SRC/base.img" || fail "read through the background daemon differs"
umount "$MNT" || fail "umount"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
! kill -0 "$pid" 2>/dev/null || fail "the background daemon did not exit after umount"
unset 'PIDS[-1]' 'MNTS[-1]'

note "B: the image file damaged under a running daemon (serve=ssd)"
cp "$TMP/a.yolo" "$TMP/b.yolo"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/b.yolo,serve=ssd,no_prefill,metrics=$TMP/b.prom,metrics_interval=1"
dd if="$MNT/base.img" iflag=direct bs=1M status=none | cmp - "$SRC/base.img" || fail "read before the damage"
# Overwrite the data section in place (the daemon holds this inode open).
dd if=/dev/urandom of="$TMP/b.yolo" bs=4096 seek=1 count=1024 conv=notrunc status=none
for i in 1 2 3; do
	drop_caches
	dd if="$MNT/base.img" iflag=direct bs=1M status=none | cmp - "$SRC/base.img" \
		|| fail "read $i after overwriting the image differs from the source"
done
truncate -s 8192 "$TMP/b.yolo"
drop_caches
dd if="$MNT/base.img" iflag=direct bs=64k status=none | cmp - "$SRC/base.img" \
	|| fail "read after truncating the image differs from the source"
sleep 1.5
yolofs_stop
lines=$(grep -c "base.img" "$TMP/yolofs.log")
echo "$lines log lines about base.img; bad blocks $(metric bad_blocks "$TMP/b.prom"), files disabled $(metric files_disabled "$TMP/b.prom")"
[ "$lines" -le 12 ] || fail "a damaged image flooded the log ($lines lines)"
[ "$(grep -c "read from the source from now on" "$TMP/yolofs.log")" = 1 ] || fail "disabling the file was not logged once"
[ "$(metric files_disabled "$TMP/b.prom")" = 1 ] || fail "files_disabled is not 1"
[ "$(metric bad_blocks "$TMP/b.prom")" -ge 8 ] || fail "bad blocks not counted"

note "C: a block flagged all-zero whose checksum is not that of zeros"
"$MKIMAGE" "$TMP/c.yolo" "$SRC" base.img || fail "mkimage"
"$HELPERS/craftimage" "$TMP/c.yolo" base.img 5 zero-flag || fail "craftimage"
"$YOLO_IMAGE" verify "$TMP/c.yolo" >/dev/null 2>&1 && fail "yolo-image verify accepted the crafted image"
for mode in "serve=memory" "serve=memory,no_prefill" "serve=ssd" "serve=ssd,no_prefill"; do
	drop_caches
	yolofs_start "$SRC" "$MNT" -o "images=$TMP/c.yolo,$mode,metrics=$TMP/c.prom"
	dd if="$MNT/base.img" bs=4096 skip=5 count=1 status=none | cmp - <(dd if="$SRC/base.img" bs=4096 skip=5 count=1 status=none) \
		|| fail "$mode: the crafted zero block was served"
	cmp "$MNT/base.img" "$SRC/base.img" || fail "$mode: file differs"
	yolofs_stop
	[ "$(metric bad_blocks "$TMP/c.prom")" -ge 1 ] || fail "$mode: the crafted block was not counted as bad"
	[ "$(served "$TMP/c.prom")" -gt 0 ] || fail "$mode: the rest of the image was not served"
	echo "$mode: refused, $(metric bad_blocks "$TMP/c.prom") bad block(s), the rest served"
done

note "D: a source read failing part way is never a short read taken for the end of the file"
EIO=$TMP/eio
mkdir -p "$EIO" "$TMP/emnt"
# 4 MiB disk; bytes [2 MiB + 1000, 2 MiB + 9000) fail.
"$HELPERS/eiofs" 4194304 $((2097152 + 1000)) 8000 "$EIO" 2>"$TMP/eiofs.log" &
PIDS+=($!) MNTS+=("$EIO")
wait_until "eiofs is mounted" 'findmnt -n -M "$EIO" >/dev/null'
"$MKIMAGE" "$TMP/d.yolo" "$EIO" disk:0:1048576 || fail "mkimage over eiofs"
for opts in "" "images=$TMP/d.yolo"; do
	drop_caches
	yolofs_start "$EIO" "$TMP/emnt" ${opts:+-o "$opts"}
	# A 64 KiB read starting before the bad range: the source returns part,
	# then EIO.  Through the daemon (a file an image serves) the reader
	# gets EIO: a short FUSE reply would mean the end of the file.  A file
	# no image serves is a kernel passthrough open: the reader gets what
	# the source gives, the good part (a short read, not the end of the
	# file) and then EIO.  Never a full read.
	/usr/bin/python3 - "$TMP/emnt/disk" "$EIO/disk" "${opts:+served}" >"$TMP/dd.err" 2>&1 <<'PY' ||
import errno, mmap, os, sys
path, src, served = sys.argv[1], sys.argv[2], sys.argv[3] == "served"
off = 2097152
buf = mmap.mmap(-1, 65536)
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
try:
    n = os.preadv(fd, [buf], off)
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else "not EIO: %s" % e)
if served or n == 65536:
    sys.exit("read over a failing source range succeeded (%d bytes)" % n)
with open(src, "rb") as f:
    f.seek(off)
    if buf[:n] != f.read(n):
        sys.exit("the good part of a short read differs from the source")
try:
    os.preadv(fd, [buf], off + n)
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else "after a short read, not EIO: %s" % e)
sys.exit("a short read was followed by a good read: the end of the file?")
PY
		fail "${opts:-no image}: $(cat "$TMP/dd.err")"
	# Before the bad range everything reads (and from the image where it holds it).
	dd if="$TMP/emnt/disk" bs=1M count=2 iflag=direct status=none | cmp - <(dd if="$EIO/disk" bs=1M count=2 status=none) \
		|| fail "${opts:-no image}: good range differs"
	yolofs_stop
	echo "${opts:-no image}: EIO reported"
done

note "E: a damaged block inside a stretch read at once by serve=ssd's prefill"
cp "$TMP/a.yolo" "$TMP/e.yolo"
size=$(stat -c %s "$TMP/e.yolo")
# One page in the middle of the data section (16 MiB of the image's 16.1).
dd if=/dev/urandom of="$TMP/e.yolo" bs=4096 seek=$((size / 8192)) count=1 conv=notrunc status=none
drop_caches
yolofs_start "$SRC" "$MNT" -o "images=$TMP/e.yolo,serve=ssd,metrics=$TMP/e.prom"
cmp "$MNT/base.img" "$SRC/base.img" || fail "E: prefill pushed a damaged block of the image file"
yolofs_stop
bad=$(metric bad_blocks "$TMP/e.prom") pushed=$(metric bytes_prefilled "$TMP/e.prom")
echo "E: $bad bad block(s) left out, $pushed bytes prefilled"
[ "$bad" -ge 1 ] && [ "$bad" -le 2 ] || fail "E: $bad bad blocks counted (the damage covers 1 or 2)"
[ "$pushed" -ge $((16777216 - 2 * 4096)) ] || fail "E: the rest of the image was not prefilled ($pushed bytes)"
echo PASS

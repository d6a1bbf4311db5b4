#!/bin/bash
# Kernel passthrough (Linux >= 6.9, libfuse >= 3.16): an open no image
# serves is read and written by the kernel on the source file itself.
#  A. A file no image covers: buffered, O_DIRECT and mmap reads, and writes
#     through a second open of the same file (it shares the first one's
#     backing file), all give the source's bytes, and not one READ or
#     WRITE request reaches the daemon (libfuse's -d log counts them).
#  B. A file an image serves keeps the daemon's path (its reads are served
#     from the image).
#  C. An image-covered file changed on the source (so not served now) is
#     opened, and written through that passthrough open, bypassing the
#     daemon: no later open serves the image's old bytes, while that open
#     is held or after it is closed, after the background comparison and
#     after the caches are dropped.
#  D. overlayfs over the mount reads through passthrough opens.
#  E. Fallback: with no_passthrough every read goes through the daemon
#     (the gauge says 0) and the bytes are the same.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
head -c 16777216 /dev/urandom >"$SRC/plain"
head -c 4194304 /dev/urandom >"$SRC/served"
head -c 4194304 /dev/urandom >"$SRC/changed"
"$MKIMAGE" "$TMP/boot.yolo" "$SRC" served changed || fail "mkimage"
# ops OPCODE: requests of that opcode in the daemon's debug log so far.
ops() { grep -c "opcode: $1 " "$TMP/yolofs.log"; }

# same_bytes PATH REF: buffered, O_DIRECT and mmap reads of PATH give REF.
same_bytes() {
	/usr/bin/python3 - "$1" "$2" <<'PY' || fail "$1: reads through the mount differ from $2"
import mmap, os, sys
path, ref = sys.argv[1:3]
want = open(ref, "rb").read()
with open(path, "rb") as f:
    assert f.read() == want, "buffered"
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
got = bytearray()
while True:
    n = os.preadv(fd, [buf], len(got))
    got += buf[:n]
    if n < len(buf):
        break
os.close(fd)
assert bytes(got) == want, "O_DIRECT"
with open(path, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    assert m[:] == want, "mmap"
PY
}

note "A: a file no image covers: the kernel reads and writes it"
drop_caches
yolofs_start "$SRC" "$MNT" -d -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom,metrics_interval=1"
wait_until "the metrics are written" '[ -s "$TMP/m.prom" ]'
[ "$(gauge kernel_passthrough "$TMP/m.prom")" = 1 ] || fail "kernel passthrough is not on"
reads0=$(ops READ) writes0=$(ops WRITE)
same_bytes "$MNT/plain" "$SRC/plain"
/usr/bin/python3 - "$MNT/plain" <<'PY' || fail "a write through a second open of a passthrough file failed"
import os, sys
ro = os.open(sys.argv[1], os.O_RDONLY)
rw = os.open(sys.argv[1], os.O_RDWR)          # joins the read-only open's backing file
os.pwrite(rw, b"written through the mount", 4096)
os.fsync(rw)
assert os.pread(ro, 25, 4096) == b"written through the mount"
os.close(rw)
os.close(ro)
PY
cmp -n 25 -i 4096:0 "$SRC/plain" <(printf 'written through the mount') ||
	fail "the write did not reach the source"
same_bytes "$MNT/plain" "$SRC/plain"
[ "$(ops READ)" = "$reads0" ] || fail "$(($(ops READ) - reads0)) READ requests reached the daemon"
[ "$(ops WRITE)" = "$writes0" ] || fail "$(($(ops WRITE) - writes0)) WRITE requests reached the daemon"
wait_until "passthrough opens are counted" '[ "$(metric kernel_passthrough_opens "$TMP/m.prom")" -ge 5 ]'

note "B: a file an image serves keeps the daemon's path"
reads0=$(ops READ)
same_bytes "$MNT/served" "$SRC/served"
[ "$(ops READ)" -gt "$reads0" ] || fail "the served file's reads did not reach the daemon"
wait_until "the image serves it" '[ "$(served "$TMP/m.prom")" -gt 0 ]'

note "C: written through a passthrough open: never the image's old bytes"
sleep 0.02
touch "$SRC/changed"            # same bytes, new change time: not served until compared
exec {held}<"$MNT/changed"      # a passthrough open, held (as qemu holds a base file)
reads0=$(ops READ)
/usr/bin/python3 - "$MNT/changed" <<'PY' || fail "writing through the passthrough open failed"
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, os.urandom(65536), 0)           # the image holds these blocks
os.close(fd)
PY
[ "$(ops READ)" = "$reads0" ] || fail "the changed file's reads reached the daemon"
same_bytes "$MNT/changed" "$SRC/changed"
exec {held}<&-
wait_until "background comparisons end" '[ "$(gauge background_jobs "$TMP/m.prom")" = 0 ]'
same_bytes "$MNT/changed" "$SRC/changed"
drop_caches
same_bytes "$MNT/changed" "$SRC/changed"

note "D: overlayfs over the mount"
mkdir -p "$TMP/upper" "$TMP/work" "$TMP/ovl"
mount -t overlay overlay -o "lowerdir=$MNT,upperdir=$TMP/upper,workdir=$TMP/work" "$TMP/ovl" ||
	fail "overlayfs over the mount"
EXTRA_MNTS+=("$TMP/ovl")
reads0=$(ops READ)
same_bytes "$TMP/ovl/plain" "$SRC/plain"
[ "$(ops READ)" = "$reads0" ] || fail "reads through overlayfs reached the daemon"
umount "$TMP/ovl"
EXTRA_MNTS=()
yolofs_stop

note "E: fallback: no_passthrough"
: >"$TMP/yolofs.log"
rm -f "$TMP/m.prom"
drop_caches
yolofs_start "$SRC" "$MNT" -d -o "images=$TMP/boot.yolo,no_passthrough,metrics=$TMP/m.prom,metrics_interval=1"
same_bytes "$MNT/plain" "$SRC/plain"
[ "$(ops READ)" -gt 0 ] || fail "no READ reached the daemon without passthrough"
wait_until "the metrics are written" '[ -s "$TMP/m.prom" ]'
[ "$(gauge kernel_passthrough "$TMP/m.prom")" = 0 ] || fail "the gauge says passthrough without it"
[ "$(metric kernel_passthrough_opens "$TMP/m.prom")" = 0 ] || fail "passthrough opens without it"
grep -q "kernel passthrough: off (not asked for)" "$TMP/yolofs.log" || fail "the fallback was not logged"
yolofs_stop
echo PASS

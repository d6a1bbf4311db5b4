#!/bin/bash
# qemu-img/qemu-io: a qcow2 overlay whose backing file is on the mount reads
# the same data as the same overlay over the plain source, qemu-io random
# reads (cache=none, i.e. O_DIRECT) agree, QEMU's image locks work through
# the mount, and the statistics show image hits.
. "$(dirname "$0")/lib.sh"
command -v qemu-img >/dev/null || skip "qemu-img is missing"
command -v qemu-io >/dev/null || skip "qemu-io is missing"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
qemu-img create -q -f qcow2 "$SRC/base.qcow2" 64M || fail "qemu-img create"
qemu-io -f qcow2 -c "write -P 0xab 0 1M" -c "write -P 0x5c 3M 2M" -c "write -P 0x17 9M 512k" \
	-c "write -P 0xe1 33M 1M" -c "write -z 40M 1M" -c "write -P 0x42 63M 1M" \
	"$SRC/base.qcow2" >/dev/null || fail "qemu-io write"
# Sprinkle unaligned random data so patterns are not all whole clusters.
head -c 1000000 /dev/urandom >"$TMP/rnd"
qemu-io -f qcow2 -c "write -s $TMP/rnd 12345 1000000" "$SRC/base.qcow2" >/dev/null \
	|| fail "qemu-io write -s"
size=$(stat -c %s "$SRC/base.qcow2")
# Image: the header and every other 4 KiB block of the first 4 MiB, then
# every third block of the rest, so reads mix hits and misses.
"$MKIMAGE" "$TMP/boot.yolo" "$SRC" base.qcow2:0:65536 base.qcow2:every:2 \
	|| fail "mkimage"

yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom,allow_other"
qemu-img create -q -f qcow2 -b "$MNT/base.qcow2" -F qcow2 "$TMP/ov-mnt.qcow2" || fail "overlay on mount"
qemu-img create -q -f qcow2 -b "$SRC/base.qcow2" -F qcow2 "$TMP/ov-src.qcow2" || fail "overlay on source"
qemu-img compare -q "$TMP/ov-mnt.qcow2" "$TMP/ov-src.qcow2" || fail "qemu-img compare of the overlays"
qemu-img compare -q -T none "$MNT/base.qcow2" "$SRC/base.qcow2" || fail "qemu-img compare of the bases (cache=none)"

# Random reads through qemu-io with cache=none (O_DIRECT on the backing file).
cmds=()
for i in $(seq 60); do
	off=$(( (RANDOM * 32768 + RANDOM) % (64 * 1048576 - 70000) ))
	len=$(( (RANDOM % 16 + 1) * 4096 ))
	cmds+=(-c "read -v $((off / 512 * 512)) $len")
done
qemu-io -f qcow2 -t none -r "${cmds[@]}" "$TMP/ov-mnt.qcow2" | grep -v 'ops;' >"$TMP/io-mnt" || fail "qemu-io on mount overlay"
qemu-io -f qcow2 -t none -r "${cmds[@]}" "$TMP/ov-src.qcow2" | grep -v 'ops;' >"$TMP/io-src" || fail "qemu-io on source overlay"
[ "$(wc -l <"$TMP/io-mnt")" -gt 1000 ] || fail "qemu-io produced too little output"
cmp -s "$TMP/io-mnt" "$TMP/io-src" || fail "qemu-io random reads differ"

# QEMU as libvirt runs it: an unprivileged user whose overlay's backing
# file is on the mount (allow_other) reads the same data.  yolofs opens the
# backing file as that user, so the file must be readable by it.
chmod 755 "$TMP"
chmod 644 "$SRC/base.qcow2"
qemu-img create -q -f qcow2 -b "$MNT/base.qcow2" -F qcow2 "$TMP/ov-user.qcow2" || fail "user overlay"
chown 65534:65534 "$TMP/ov-user.qcow2"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	qemu-io -f qcow2 -t none -r "${cmds[@]}" "$TMP/ov-user.qcow2" | grep -v 'ops;' >"$TMP/io-user" \
	|| fail "qemu-io as an unprivileged user"
cmp -s "$TMP/io-user" "$TMP/io-src" || fail "qemu-io as an unprivileged user reads other data"
chmod 600 "$SRC/base.qcow2"
setpriv --reuid=65534 --regid=65534 --clear-groups \
	qemu-io -f qcow2 -r -c "read 0 512" "$TMP/ov-user.qcow2" >/dev/null 2>&1 \
	&& fail "an unprivileged user read a 0600 root backing file through the mount"
chmod 644 "$SRC/base.qcow2"

# QEMU locks its images (OFD locks); a second writer must be refused.
qemu-io -f qcow2 -c "sleep 3000" "$TMP/ov-mnt.qcow2" >/dev/null & QPID=$!
sleep 1
if qemu-io -f qcow2 -c "read 0 512" "$MNT/base.qcow2" >/dev/null 2>&1; then
	: # the backing file is opened read-only with a shared lock: allowed
fi
qemu-img info "$TMP/ov-mnt.qcow2" >/dev/null 2>&1 && fail "image lock not enforced (overlay)"
qemu-io -f raw -c "write 0 512" "$MNT/base.qcow2" >/dev/null 2>"$TMP/lockerr" \
	&& fail "a writer got the backing file that QEMU holds"
grep -qi lock "$TMP/lockerr" || fail "write refused for another reason: $(cat "$TMP/lockerr")"
wait $QPID
qemu-io -f raw -c "read 0 512" "$MNT/base.qcow2" >/dev/null || fail "read after the lock holder exited"

# Writes through the mount to the backing file are seen (commit-like use).
qemu-io -f qcow2 -c "write -P 0x99 3M 8k" "$MNT/base.qcow2" >/dev/null || fail "write to base through mount"
qemu-io -f qcow2 -c "write -P 0x99 3M 8k" "$TMP/ov-src.qcow2" >/dev/null || fail "write to source overlay"
qemu-img compare -q "$TMP/ov-mnt.qcow2" "$TMP/ov-src.qcow2" || fail "compare after writing the base"
yolofs_stop
hits=$(metric hits "$TMP/m.prom")
echo "image hits $hits, misses $(metric misses "$TMP/m.prom"), invalidations $(metric invalidations "$TMP/m.prom")"
[ "$hits" -gt 0 ] || fail "no image hits"
[ "$(metric invalidations "$TMP/m.prom")" -gt 0 ] || fail "the write to the base did not invalidate image blocks"
echo PASS

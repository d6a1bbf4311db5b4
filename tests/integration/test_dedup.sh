#!/bin/bash
# test_dedup.sh - boot blocks two images have in common are held in memory
# once (XXH3-128 content addressing), and served correctly to both.
#
# Two qcow2 images made by qemu-img from related disks (B is A with a
# quarter of its data rewritten, as with two builds of one distribution),
# captured separately with yolo-capture while qemu-io reads the same
# "boot" ranges from each.  yolofs then serves both images at once, with
# dedup (default) and with -o no_dedup; the metrics and the daemon's locked
# memory (VmLck) must show the shared blocks held once, and qemu-img compare
# through the mount must find both images identical to their sources.
source "$(dirname "$0")/../mount/lib.sh"

command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || skip "qemu-utils missing"
[ -n "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"

SRC=$TMP/src MNT=$TMP/mnt M=$TMP/metrics
MIB=1048576
mkdir -p "$SRC" "$MNT" "$TMP/capmnt"

note "two related disks"
head -c $((64 * MIB)) /dev/urandom >"$TMP/a.raw"
cp "$TMP/a.raw" "$TMP/b.raw"
for off in 3 11 19 27 35 43 51 59; do  # 8 x 2 MiB of 64 MiB rewritten in B
	head -c $((2 * MIB)) /dev/urandom | dd of="$TMP/b.raw" bs=1M seek="$off" conv=notrunc status=none
done
qemu-img convert -f raw -O qcow2 "$TMP/a.raw" "$SRC/a.qcow2" || fail "qemu-img convert a"
qemu-img convert -f raw -O qcow2 "$TMP/b.raw" "$SRC/b.qcow2" || fail "qemu-img convert b"

# The "boot": the same scattered reads, 24 MiB of each 64 MiB disk.
READS=()
for i in $(seq 0 47); do READS+=(-c "read $(((i * 37 % 64) * MIB)) 512k"); done
for img in a b; do
	"$YOLO_CAPTURE" -q -o "$TMP/$img.yolo" --mountpoint "$TMP/capmnt" "$SRC" -- \
		qemu-io -r -f qcow2 -t none "${READS[@]}" "$TMP/capmnt/$img.qcow2" >"$TMP/cap-$img.out" 2>&1 ||
		{ cat "$TMP/cap-$img.out"; fail "capture of $img"; }
done
"$YOLO_IMAGE" inspect "$TMP/a.yolo" | tail -n 3
"$YOLO_IMAGE" inspect "$TMP/b.yolo" | tail -n 3

# serve OPTS: mount both images, read both disks back, and set USAGE to
# the daemon's memory_usage.
serve() {
	rm -f "$M"
	yolofs_start "$SRC" "$MNT" -o "images=$TMP/a.yolo:$TMP/b.yolo,metrics=$M,metrics_interval=1$1"
	wait_until "metrics are written" '[ -s "$M" ]'
	for img in a b; do
		qemu-img compare -f qcow2 -F qcow2 "$SRC/$img.qcow2" "$MNT/$img.qcow2" >/dev/null ||
			fail "$img.qcow2 differs through the mount ($1)"
		qemu-io -r -f qcow2 -t none "${READS[@]}" "$MNT/$img.qcow2" >"$TMP/read.out" 2>&1 ||
			fail "qemu-io reads of $img.qcow2 failed ($1)"
	done
	wait_until "both images served" '[ "$(served "$M")" -gt 0 ] && [ "$(metric bytes_memory "$M")" -gt 0 ]'
	USAGE=$(memory_usage "$M")
	yolofs_stop
}

note "serving both, with and without dedup"
serve ""; d_use=$USAGE
serve ",no_dedup"; n_use=$USAGE
dedup_table "$d_use" "$n_use"
read -r d_res d_uniq d_log d_lck <<<"$d_use"
read -r n_res n_uniq n_log n_lck <<<"$n_use"
[ "$d_log" = "$n_log" ] || fail "the same images have different logical sizes"
[ "$n_uniq" = "$n_log" ] || fail "without dedup, unique bytes ($n_uniq) differ from logical ($n_log)"
# B shares everything but the rewritten quarter of what was read: dedup
# must hold well under the sum (expected about 5/8 of it).
[ "$d_res" -lt $((n_res * 3 / 4)) ] || fail "dedup holds $d_res bytes, not much below $n_res"
[ "$d_res" -gt $((n_res / 2)) ] || fail "dedup holds $d_res bytes: less than one image?"
# The locked memory follows (other mlocked memory of the daemon is small);
# sanitizer builds do not show it in VmLck.
if [ "$n_lck" -gt 0 ]; then
	[ "$d_lck" -lt "$n_lck" ] || fail "VmLck ${d_lck} KiB with dedup, not below ${n_lck} KiB without"
else
	echo "note: VmLck is 0 for this build; checked the metrics only"
fi
echo "OK: dedup"

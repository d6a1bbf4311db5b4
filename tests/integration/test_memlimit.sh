#!/bin/bash
# test_memlimit.sh - with memlimit smaller than all boot images, the most
# recently used images stay in memory and the rest are served from their
# files (the "dedicated SSD"), as the metrics report.
#
# Three 4 MiB images, one per file, under memlimit=9M (two fit).  At start
# the first two listed are in memory.  Opening the third file's image moves
# it in and the least recently used one out; then the next, and so on.  The
# memory in use never exceeds the limit, every read matches the source,
# and images out of memory are still served (from the image file).  With a
# limit below any image, everything is served from the files.
source "$(dirname "$0")/../mount/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt M=$TMP/metrics
MIB=1048576
mkdir -p "$SRC" "$MNT"
for i in 1 2 3; do
	head -c $((4 * MIB)) /dev/urandom >"$SRC/f$i"
	"$MKIMAGE" "$TMP/i$i.yolo" "$SRC" "f$i" || fail mkimage
done

in_mem() { image_metric image_in_memory "$TMP/i$1.yolo" 0 "$M"; }
# placement: the in_memory flags of images 1..3, e.g. "110"
placement() { echo "$(in_mem 1)$(in_mem 2)$(in_mem 3)"; }
within_limit() {
	local logical resident
	logical=$(gauge memory_logical_bytes "$M")
	resident=$(gauge memory_resident_bytes "$M")
	[ "$logical" -le $((9 * MIB)) ] || fail "$logical bytes of images in memory, over memlimit"
	# Resident adds page rounding (one page per image) and nothing else.
	[ "$resident" -le $((9 * MIB + 3 * 8192)) ] || fail "$resident bytes resident, over memlimit"
}
# use N: open and read file N through the mount (caches dropped first).
use() {
	drop_caches
	cmp "$SRC/f$1" "$MNT/f$1" || fail "f$1 differs through the mount"
}

note "memlimit=9M with three 4 MiB images"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/i1.yolo:$TMP/i2.yolo:$TMP/i3.yolo,memlimit=9M,metrics=$M,metrics_interval=1"
wait_until "metrics are written" '[ -s "$M" ]'
[ "$(placement)" = 110 ] || fail "at start: placement $(placement), expected the first two listed in memory"
grep -q "i3.yolo: over memlimit" "$TMP/yolofs.log" || fail "no log line for the image left out"
within_limit

note "using image 3 moves it in and the least recently used (2) out"
use 3
wait_until "image 3 is in memory" '[ "$(placement)" = 101 ]'
within_limit
[ "$(image_metric unloads_total "$TMP/i2.yolo" 0 "$M")" = 1 ] || fail "image 2 was not counted as unloaded"
[ "$(image_metric loads_total "$TMP/i3.yolo" 0 "$M")" = 1 ] || fail "image 3 was not counted as loaded"

note "then 2, then 1: each time the least recently used goes"
use 2
wait_until "image 2 is back, 1 is out" '[ "$(placement)" = 011 ]'
within_limit
use 1
wait_until "image 1 is back, 3 is out" '[ "$(placement)" = 110 ]'
within_limit
use 2                              # already in memory: nothing moves
sleep 1.5
[ "$(placement)" = 110 ] || fail "placement changed to $(placement) when an image in memory was used"

note "an image out of memory is served from its file"
dd if="$MNT/f3" of="$TMP/f3.direct" bs=1M iflag=direct status=none || fail "O_DIRECT read of f3"
cmp "$SRC/f3" "$TMP/f3.direct" || fail "f3 read with O_DIRECT differs"
wait_until "image 3 served bytes" '[ "$(image_metric bytes_ssd_total "$TMP/i3.yolo" 0 "$M")" -gt 0 ] ||
	[ "$(image_metric bytes_memory_total "$TMP/i3.yolo" 0 "$M")" -gt 0 ]'
wait_until "image 3 is in memory again" '[ "$(placement)" = 011 ] || [ "$(placement)" = 101 ]'
within_limit
grep "dropped from memory" "$TMP/yolofs.log" | head -n 3

note "churn: readers of all three files while images move and are reloaded"
# Each O_DIRECT read opens its file afresh (moving its image to the front)
# and reaches the daemon; SIGHUP after touching an image replaces it.
reader() {
	local end=$((SECONDS + 6)) n=0 i
	while [ $SECONDS -lt $end ]; do
		i=$((RANDOM % 3 + 1))
		dd if="$MNT/f$i" bs=256k iflag=direct status=none | cmp -s - "$SRC/f$i" ||
			{ echo "reader $1: f$i differs" >"$TMP/churn.fail"; return 1; }
		n=$((n + 1))
	done
	echo "$n" >"$TMP/churn.$1"
}
rm -f "$TMP/churn.fail"
READERS=()
for r in 1 2 3 4; do reader $r & READERS+=($!); done
for k in $(seq 20); do
	touch "$TMP/i$((k % 3 + 1)).yolo"
	kill -HUP "${PIDS[-1]}"
	sleep 0.25
done
wait "${READERS[@]}"
[ ! -e "$TMP/churn.fail" ] || fail "$(cat "$TMP/churn.fail")"
[ "$(ls "$TMP"/churn.? | wc -l)" = 4 ] || fail "a reader did not finish"
echo "reads during churn: $(cat "$TMP"/churn.? | awk '{ s += $1 } END { print s }');" \
     "reloads: $(metric reloads "$M"); loads: $(metric loads "$M"); unloads: $(metric unloads "$M")"
kill -0 "${PIDS[-1]}" || fail "the daemon died under churn"
# One metrics file can show an image freed (images) and, sampled a moment
# before, its memory still held: wait for both.
wait_until "the replaced images and their memory are released" \
	'[ "$(gauge images "$M")" = 3 ] && [ "$(gauge memory_logical_bytes "$M")" -le $((9 * MIB)) ]'
within_limit
yolofs_stop

note "memlimit below any image: everything from the image files"
rm -f "$M"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/i1.yolo:$TMP/i2.yolo:$TMP/i3.yolo,memlimit=1M,metrics=$M,metrics_interval=1"
wait_until "metrics are written" '[ -s "$M" ]'
for i in 1 2 3; do
	dd if="$MNT/f$i" of="$TMP/f.direct" bs=1M iflag=direct status=none || fail "O_DIRECT read of f$i"
	cmp "$SRC/f$i" "$TMP/f.direct" || fail "f$i differs"
done
wait_until "all three served from their files" \
	'[ "$(metric bytes_ssd "$M")" = $((12 * MIB)) ]'
[ "$(placement)" = 000 ] || fail "an image was loaded under memlimit=1M"
[ "$(gauge memory_resident_bytes "$M")" = 0 ] || fail "memory used under memlimit=1M"
[ "$(metric bytes_memory "$M")" = 0 ] || fail "bytes served from memory under memlimit=1M"
yolofs_stop
echo "OK: memlimit"

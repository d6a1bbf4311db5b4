#!/bin/bash
# test_hot_reload.sh - boot images are loaded, replaced and unloaded in a
# running yolofs by SIGHUP, without unmounting.
#
# The daemon starts over an empty image directory.  An image added and
# announced with SIGHUP serves the next opens.  An image replaced while a
# file served from it is open: the open file keeps the old image (both are
# listed, told apart by their generation), new opens use the new one, and
# the old image's memory is released when the file is closed.  A corrupt
# image or a vanished directory is reported and changes nothing.  Removing
# every image returns all memory.  Every read is compared with the source.
source "$(dirname "$0")/../mount/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt IMGS=$TMP/images M=$TMP/metrics
mkdir -p "$SRC" "$MNT" "$IMGS"
head -c 4194304 /dev/urandom >"$SRC/f1"
head -c 3000000 /dev/urandom >"$SRC/f2"

yolofs_start "$SRC" "$MNT" -o "images=$IMGS,metrics=$M,metrics_interval=1"
PID=${PIDS[-1]}
wait_until "metrics are written" '[ -s "$M" ]'
grep -q "holds no boot images yet" "$TMP/yolofs.log" || fail "no warning about the empty image directory"

# reload N: send SIGHUP and wait for the N-th reload to be finished (the
# log line comes after the images are loaded) and exported.
reload() {
	local n=$1
	kill -HUP "$PID"
	wait_until "reload $n is logged" '[ "$(grep -c "reload: " "$TMP/yolofs.log")" -ge $n ]'
	wait_until "reload $n is in the metrics" '[ "$(metric reloads "$M")" -ge $n ]'
	is_mounted "$MNT" || fail "SIGHUP unmounted"
}
fresh_cmp() { drop_caches; cmp "$SRC/$1" "$MNT/$1" || fail "$1 differs through the mount ($2)"; }

note "no images: pass-through"
fresh_cmp f1 "no images"
[ "$(served "$M")" = 0 ] || fail "served from an image before any was loaded"

note "add an image, SIGHUP"
"$MKIMAGE" "$IMGS/a.yolo" "$SRC" f1 || fail mkimage
reload 1
A1="$IMGS/a.yolo"
[ "$(image_metric image_in_memory "$A1" 1 "$M")" = 1 ] || fail "the added image is not in memory"
logical1=$(gauge memory_logical_bytes "$M")
[ "$logical1" = 4194304 ] || fail "memory holds $logical1 bytes, expected the 4 MiB image"
fresh_cmp f1 "added image"
wait_until "the added image serves f1" '[ "$(image_metric bytes_prefilled_total "$A1" 1 "$M")" -gt 0 ]'

note "replace it while f1 is open"
drop_caches
exec 3<"$MNT/f1"                  # first open: served from generation 1
"$MKIMAGE" "$IMGS/new.tmp" "$SRC" f1 f2 || fail mkimage
mv "$IMGS/new.tmp" "$IMGS/a.yolo"
reload 2
wait_until "both generations are listed" '[ "$(gauge images "$M")" = 2 ]'
# Both generations hold f1's blocks: held once.
[ "$(gauge memory_unique_bytes "$M")" = $((4194304 + 3000000)) ] ||
	fail "memory holds $(gauge memory_unique_bytes "$M") distinct bytes, expected f1 once plus f2"
hits_before=$(image_metric hits_total "$A1" 1 "$M")
drop_caches                       # the reads below reach the daemon
cmp "$SRC/f1" - <&3 || fail "f1 read through the descriptor opened before the reload differs"
wait_until "the open file is still served by generation 1" \
	'[ "$(image_metric hits_total "$A1" 1 "$M")" -gt "$hits_before" ]'
[ "$(image_metric files_matched_total "$A1" 2 "$M")" = 0 ] || fail "generation 2 served before a new open"
fresh_cmp f2 "replaced image, new open"
wait_until "a new open is served by generation 2" \
	'[ "$(image_metric bytes_prefilled_total "$A1" 2 "$M")" -gt 0 ]'
hits_old=$(image_metric hits_total "$A1" 1 "$M")
exec 3<&-
wait_until "the old generation is released after the last close" '[ "$(gauge images "$M")" = 1 ]'
wait_until "its memory is released" '[ "$(gauge memory_logical_bytes "$M")" = $((4194304 + 3000000)) ]'
fresh_cmp f1 "after the replacement"
wait_until "generation 2 serves f1 once the old one went" \
	'[ "$(image_metric files_matched_total "$A1" 2 "$M")" -ge 2 ]'
echo "hits of generation 1 while open: $hits_old"

note "a corrupt image and a vanished directory change nothing"
head -c 10000 /dev/urandom >"$IMGS/bad.yolo"
reload 3
wait_until "a corrupt image counts as a reload error" '[ "$(metric reload_errors "$M")" -ge 1 ]'
grep -q "image $IMGS/bad.yolo refused: " "$TMP/yolofs.log" || fail "the corrupt image is not named in the log"
[ "$(metric images_refused "$M")" = 1 ] || fail "the corrupt image is not counted as refused"
[ "$(gauge images "$M")" = 1 ] || fail "the good image did not survive the bad reload"
rm "$IMGS/bad.yolo"
mv "$IMGS" "$TMP/images.away"
errors=$(metric reload_errors "$M")
reload 4
wait_until "the missing directory counts as an error" '[ "$(metric reload_errors "$M")" -gt "$errors" ]'
grep -q "keeping the current images" "$TMP/yolofs.log" || fail "no message for the missing directory"
[ "$(gauge images "$M")" = 1 ] || fail "images were dropped when the directory vanished"
mv "$TMP/images.away" "$IMGS"
fresh_cmp f2 "after failed reloads"

note "remove every image"
rm "$IMGS/a.yolo"
reload 5
wait_until "no image is left" '[ "$(gauge images "$M")" = 0 ]'
wait_until "all memory is returned" '[ "$(gauge memory_resident_bytes "$M")" = 0 ]'
fresh_cmp f1 "no images again"
kill -0 "$PID" || fail "the daemon died"
yolofs_stop
echo "OK: hot reload"

#!/bin/bash
# Learning mode (-o learn=DIR): yolofs writes boot images by itself.  A
# "boot" here is a reader of chosen block ranges; the image must appear
# after the boot goes idle, verify against the source and serve the next
# boot with nothing read from the source; concurrent boots make one image,
# a later boot that reads more extends it, a file changed during the boot
# is left out; by mount, one image holds every file and the namespace
# questions; learn_max and vanished files remove images; an untrusted DIR
# is refused.  A learnt image copied to another tree (another node: same
# bytes, other inodes and times) is served there after the automatic
# comparison, and a copy with one changed block never is.
. "$(dirname "$0")/lib.sh"
SRC=$TMP/src MNT=$TMP/mnt LEARN=$TMP/learn
mkdir -p "$SRC/sub" "$MNT" "$LEARN"
head -c 8388608 /dev/urandom >"$SRC/base1"
head -c 8388608 /dev/urandom >"$SRC/base2"
echo "small file" >"$SRC/sub/conf"
OPTS="learn=$LEARN,learn_idle=1,metrics=$TMP/m.prom,metrics_interval=1,readahead=0,allow_other"

# boot FILE "SKIP:COUNT ..." (4 KiB blocks) through the mount.
boot() {
	local f=$1 r
	for r in $2; do
		dd if="$MNT/$f" of=/dev/null bs=4096 skip="${r%%:*}" count="${r##*:}" status=none || return 1
	done
}
learned() { metric learned_images "$TMP/m.prom"; }
source_bytes() { metric bytes_source "$TMP/m.prom"; }
# wait_learned N: until N images have been written since the daemon started.
wait_learned() { wait_until "$1 image(s) are learnt" "[ \$(learned) -ge $1 ]"; }
img_of() { ls "$LEARN"/*/"$1".*.yolo 2>/dev/null; }
blocks_of() { "$YOLO_IMAGE" inspect "$1" | awk '/^blocks:/ { print $2 }'; }
# start OPTS: a daemon over SRC (its metrics start afresh).
start() { rm -f "$TMP/m.prom"; yolofs_start "$SRC" "$MNT" -o "$OPTS$1"; }
restart() { yolofs_stop; drop_caches; start "$1"; }

note "A: a first boot is learnt; the next one is served"
start ""
boot base1 "0:16 100:8 1000:4"
wait_learned 1
img=$(img_of base1)
[ -n "$img" ] || fail "no image for base1 in $LEARN"
echo "learnt: $img ($(blocks_of "$img") blocks)"
[ "$(blocks_of "$img")" = 28 ] || fail "expected the 28 blocks read, got $(blocks_of "$img")"
"$YOLO_IMAGE" verify --source "$SRC" "$img" >/dev/null || fail "the learnt image does not verify"
wait_until "the image is loaded" "grep -q 'image $img: .* loaded' '$TMP/yolofs.log'"
drop_caches
boot base1 "0:16 100:8 1000:4"
sleep 1.3
echo "second boot: $(source_bytes) bytes from the source, $(served "$TMP/m.prom") served"
[ "$(source_bytes)" = 0 ] && [ "$(served "$TMP/m.prom")" -gt 0 ] || fail "the second boot was not served"

note "B: concurrent boots of one file make one image"
boot base2 "0:8" & b1=$!
boot base2 "500:8" & b2=$!
wait $b1 $b2 || fail "a boot failed"
wait_learned 2
[ "$(blocks_of "$(img_of base2)")" = 16 ] || fail "union of two boots: $(blocks_of "$(img_of base2)") blocks, expected 16"
cp "$(img_of base2)" "$TMP/base2.yolo"     # for I

note "C: a later boot that reads more extends the image (also after a touch, as nova does)"
sleep 1.5                                # the last session has ended
touch "$MNT/base1"                       # a new identity, the same bytes
boot base1 "0:16 2000:8"
wait_learned 3
[ "$(blocks_of "$(img_of base1)")" = 36 ] || fail "extended image: $(blocks_of "$(img_of base1)") blocks, expected 36"
restart ""
boot base1 "0:16 100:8 1000:4 2000:8"
sleep 1.3
[ "$(source_bytes)" = 0 ] || fail "after the extension, $(source_bytes) bytes still came from the source"
[ "$(learned)" = 0 ] || fail "a boot served entirely from the image wrote an image"

note "D: a file changed during its boot is learnt as it is at the end"
head -c 4194304 /dev/urandom >"$SRC/base3"
boot base3 "0:8"
printf 'changed' | dd of="$SRC/base3" bs=1 seek=100 conv=notrunc status=none
wait_learned 1
"$YOLO_IMAGE" verify --source "$SRC" "$(img_of base3)" >/dev/null || fail "the image of a file changed during its boot does not match it"

note "E: by mount: one image with every file and the questions"
yolofs_stop
start ",learn_by=mount"
ls -la "$MNT/sub" >/dev/null
cat "$MNT/sub/conf" >/dev/null
boot base2 "900:4"
wait_learned 1
mimg=$(ls "$LEARN"/*/mount.yolo) || fail "no mount.yolo"
"$YOLO_IMAGE" inspect --namespace "$mimg" >"$TMP/inspect"
grep -q ' sub/conf$' "$TMP/inspect" && grep -q ' base2$' "$TMP/inspect" || fail "files missing from the mount image"
grep -q '^namespace: *[1-9]' "$TMP/inspect" || fail "no namespace questions in the mount image"
grep -E '^(files|blocks|namespace):' "$TMP/inspect"
# Its questions are read from the source once it is loaded, and answered
# from memory (learn= alone: no images= given).
wait_until "the learnt questions are answered" \
	"grep -q 'mount.yolo: [0-9]* of [0-9]* namespace paths answered from memory' '$TMP/yolofs.log'"
# Another start that reads nothing new (another user: the same questions,
# asked of the source) leaves the image as it is.
chmod 0755 "$TMP"
wait_until "the image is loaded" "grep -q 'image $mimg: .* loaded' '$TMP/yolofs.log'"
setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "ls -la '$MNT/sub' >/dev/null; cat '$MNT/sub/conf' >/dev/null" ||
	fail "another user cannot read the mount"
sleep 2.5
[ "$(learned)" = 1 ] || fail "a start that read nothing new rewrote the image"

note "F: learn_max removes the least recently learnt images"
yolofs_stop
rm -f "$LEARN"/*/mount.yolo
# base4's image (64 blocks, 256 KiB and its tables) fits on its own, not
# with base1's (36 blocks) and base2's (16).
start ",learn_max=300000"
head -c 4194304 /dev/urandom >"$SRC/base4"
boot base4 "0:64"
wait_learned 1
sleep 0.5
[ -n "$(img_of base4)" ] || fail "the newest image was removed"
[ -z "$(img_of base1)" ] || [ -z "$(img_of base2)" ] || fail "nothing removed over learn_max"
grep 'to stay within learn_max' "$TMP/yolofs.log" | tail -n 2

note "G: an image whose file is gone is removed"
rm "$SRC/base4"
restart ""
wait_until "the image of a vanished file is removed" "[ -z \"\$(img_of base4)\" ]"

note "H: an untrusted learn directory, or one inside the source, is refused"
yolofs_stop
mkdir -p "$TMP/open"
chmod 1777 "$TMP/open"
! "$YOLOFS" -f -o "learn=$TMP/open" "$SRC" "$MNT" 2>"$TMP/err" || fail "yolofs started with learn= in a 1777 directory"
grep -q 'writable by others' "$TMP/err" || { cat "$TMP/err"; fail "no reason given"; }
! "$YOLOFS" -f -o "learn=$SRC/sub" "$SRC" "$MNT" 2>"$TMP/err" || fail "yolofs started with learn= inside the source"
grep -q 'inside the mounted directory' "$TMP/err" || { cat "$TMP/err"; fail "no reason given"; }

note "I: a learnt image on another node: served after the content check; one changed block: never"
OTHER=$TMP/other ODD=$TMP/odd
mkdir -p "$OTHER" "$ODD" "$TMP/imgs" "$TMP/imgs2" "$TMP/mnt2"
cp "$SRC/base2" "$OTHER/base2"            # same bytes, another inode, another mtime
cp "$SRC/base2" "$ODD/base2"
printf 'X' | dd of="$ODD/base2" bs=1 seek=$((500 * 4096 + 7)) conv=notrunc status=none
cp "$TMP/base2.yolo" "$TMP/imgs/"
cp "$TMP/base2.yolo" "$TMP/imgs2/"
yolofs_start "$OTHER" "$MNT" -o "images=$TMP/imgs,metrics=$TMP/o.prom,metrics_interval=1"
yolofs_start "$ODD" "$TMP/mnt2" -o "images=$TMP/imgs2,metrics=$TMP/d.prom,metrics_interval=1"
cat "$MNT/base2" "$TMP/mnt2/base2" >/dev/null     # the first opens start the comparisons
wait_until "both comparisons end" "[ \$(metric compared_equal '$TMP/o.prom') = 1 ] && [ \$(metric compared_stale '$TMP/d.prom') = 1 ]"
drop_caches
cmp "$MNT/base2" "$OTHER/base2" || fail "wrong bytes on the other node"
cmp "$TMP/mnt2/base2" "$ODD/base2" || fail "wrong bytes from the changed copy"
sleep 1.3
echo "other node: $(served "$TMP/o.prom") bytes served; changed copy: $(served "$TMP/d.prom") bytes served"
[ "$(served "$TMP/o.prom")" -gt 0 ] || fail "the copied image was not served on the other node"
[ "$(served "$TMP/d.prom")" = 0 ] || fail "an image was served over a file with a changed block"
echo PASS

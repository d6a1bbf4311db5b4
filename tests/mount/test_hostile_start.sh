#!/bin/bash
# Hostile images at start, at reload and at exit (issue 23, items 9 and 10).
# images=DIR holds two good images and one of each kind of bad one:
#   unsafe     a file path "../xx.img" (escapes the source)
#   dup        the same path twice
#   header     a flipped header byte (header checksum)
#   truncated  the tables cut off
#   zgarbage   block 0 a zstd frame that does not decode (memory mode)
#   zsizeless  block 0 a zstd frame without a content size that decodes to
#              half a block (memory mode)
#   dangling   a symlink to nothing (unreadable)
#   fifo       a FIFO named like an image (unreadable; must not hang)
# The sources of the zstd ones were touched after capture, so comparisons
# would be queued for them: the item 9 use after free (the set freed by a
# failed start while a queued comparison held an image, read at exit).
#   0. Item 9 alone: images=good1:zgarbage named explicitly; yolofs starts,
#      refuses zgarbage, serves good1, and exits 0 on SIGTERM with no
#      sanitizer report.
#   A. yolofs starts; each bad image is refused alone (one line naming the
#      file, yolofs_images_refused_total); both good images serve bytes from
#      memory; every file reads as the source.
#   B. SIGHUP with a new good and a new bad image: the same, the new good
#      one serves, the old ones are kept.
#   C. SIGTERM: exit status 0, no sanitizer report (run the suite against a
#      -Db_sanitize=address,undefined build to make that check bite).
#   D. insecure_images (no trust check): the FIFO is refused, not waited on.
. "$(dirname "$0")/lib.sh"
SRC=$TMP/src MNT=$TMP/mnt IMG=$TMP/images
mkdir -p "$SRC/sub" "$MNT" "$IMG" "$TMP/work"
chmod 755 "$TMP" "$IMG"

# Compressible, not constant, source files (zstd blocks need a frame).
text() { /usr/bin/python3 -c 'import random, sys
r = random.Random(int(sys.argv[1])); out = bytearray()
while len(out) < int(sys.argv[2]): out += bytes([65 + r.randrange(6)]) * r.randrange(1, 40)
sys.stdout.buffer.write(out[:int(sys.argv[2])])' "$1" "$2"; }
for f in good1 good2 good3 zgarbage zsizeless newbad dup1 dup2; do text "${#f}$RANDOM" 262144 >"$SRC/$f.img"; done
head -c 262144 /dev/urandom >"$SRC/sub/x.img"
head -c 262144 /dev/urandom >"$SRC/header.img"
head -c 262144 /dev/urandom >"$SRC/truncated.img"

mk() { "$MKIMAGE" "$@" || fail "mkimage $*"; }
craft() { "$HELPERS/craftimage" "$@" || fail "craftimage $*"; }
mk "$IMG/good1.yolo" "$SRC" good1.img
mk -z 3 "$IMG/good2.yolo" "$SRC" good2.img
mk "$TMP/work/unsafe.yolo" "$SRC" sub/x.img
craft "$TMP/work/unsafe.yolo" sub/x.img rename ../xx.img
mk "$TMP/work/dup.yolo" "$SRC" dup1.img dup2.img
craft "$TMP/work/dup.yolo" dup2.img rename dup1.img
mk "$TMP/work/header.yolo" "$SRC" header.img
printf '\x5a' | dd of="$TMP/work/header.yolo" bs=1 seek=40 conv=notrunc status=none
mk "$TMP/work/truncated.yolo" "$SRC" truncated.img
truncate -s $(($(stat -c %s "$TMP/work/truncated.yolo") - 100)) "$TMP/work/truncated.yolo"
mk -z 3 "$TMP/work/zgarbage.yolo" "$SRC" zgarbage.img
craft "$TMP/work/zgarbage.yolo" zgarbage.img 0 zstd-garbage
mk -z 3 "$TMP/work/zsizeless.yolo" "$SRC" zsizeless.img
craft "$TMP/work/zsizeless.yolo" zsizeless.img 0 zstd-sizeless
mk -z 3 "$TMP/work/newbad.yolo" "$SRC" newbad.img
craft "$TMP/work/newbad.yolo" newbad.img 0 zstd-garbage
mk "$TMP/work/good3.yolo" "$SRC" good3.img
BAD="unsafe dup header truncated zgarbage zsizeless"
for b in $BAD; do cp "$TMP/work/$b.yolo" "$IMG/$b.yolo"; done
ln -s "$TMP/work/nothing-here.yolo" "$IMG/dangling.yolo"
mkfifo "$IMG/fifo.yolo"
BAD="$BAD dangling fifo"
chmod 644 "$IMG"/*.yolo 2>/dev/null
# Metadata changed since capture: comparisons are queued at start.
sleep 0.05
touch "$SRC/zgarbage.img" "$SRC/zsizeless.img" "$SRC/newbad.img"

# check_refused N: N refusal lines and metric, each bad image named.
check_refused() {
	local n=$1 b
	[ "$(grep -c ' refused: ' "$TMP/yolofs.log")" = "$n" ] ||
		fail "expected $n refusal lines, got: $(grep ' refused: ' "$TMP/yolofs.log")"
	[ "$(metric images_refused "$TMP/m.prom")" = "$n" ] ||
		fail "images_refused is $(metric images_refused "$TMP/m.prom"), expected $n"
	for b in $BAD; do
		grep -q "image $IMG/$b.yolo refused: " "$TMP/yolofs.log" || fail "$b.yolo: no refusal line"
	done
}
# reads_all: every file through the mount equals the source.
reads_all() {
	local f
	drop_caches
	for f in "$SRC"/*.img "$SRC"/sub/x.img; do
		cmp -s "$MNT/${f#"$SRC"/}" "$f" || fail "${f#"$SRC"/} reads differently through the mount"
	done
}
# from_memory IMAGE: bytes that image served from memory.
from_memory() { [ -f "$TMP/m.prom" ] && image_metric bytes_memory_total "$1" "${2:-0}" "$TMP/m.prom" || echo 0; }
no_sanitizer_report() {
	! grep -E "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP/yolofs.log" ||
		fail "a sanitizer report"
}

note "0: item 9, an undecodable zstd block 0 over a touched source, named alone"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o "images=$IMG/good1.yolo:$IMG/zgarbage.yolo"
cmp -s "$MNT/zgarbage.img" "$SRC/zgarbage.img" && cmp -s "$MNT/good1.img" "$SRC/good1.img" ||
	fail "item 9: files read wrong"
yolofs_stop
no_sanitizer_report
[ "$(grep -c ' refused: ' "$TMP/yolofs.log")" = 1 ] &&
	grep -q "image $IMG/zgarbage.yolo refused: block 0: a zstd frame that does not decode" "$TMP/yolofs.log" ||
	fail "item 9: expected one refusal line"
echo "0: zgarbage refused, good1 served, clean exit"

note "A: start with 2 good and 8 bad images"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o "images=$IMG,no_prefill,metrics=$TMP/m.prom,metrics_interval=1"
reads_all
wait_until "metrics written" '[ "$(from_memory "$IMG/good1.yolo")" -gt 0 ]'
grep ' refused: ' "$TMP/yolofs.log" | sed 's/^yolofs: //'
check_refused 8
for g in good1 good2; do
	[ "$(from_memory "$IMG/$g.yolo")" -ge 262144 ] ||
		fail "$g.yolo served $(from_memory "$IMG/$g.yolo") bytes from memory"
done
grep -q "serving $SRC at $MNT (2 of 10 images)" "$TMP/yolofs.log" || fail "start line: $(grep serving "$TMP/yolofs.log")"
echo "A: 2 good images served from memory ($(from_memory "$IMG/good1.yolo") + $(from_memory "$IMG/good2.yolo") bytes), 8 refused"

note "B: SIGHUP with a new good and a new bad image"
cp "$TMP/work/good3.yolo" "$TMP/work/newbad.yolo" "$IMG/" && chmod 644 "$IMG/good3.yolo" "$IMG/newbad.yolo"
BAD="$BAD newbad"
kill -HUP "${PIDS[-1]}"
wait_until "the reload is done" 'grep -q "^yolofs: info: reload: " "$TMP/yolofs.log"'
grep "^yolofs: info: reload: " "$TMP/yolofs.log" | sed 's/^yolofs: //'
# The eight again (a reload retries every listed file) and the new one.
wait_until "the refusals are counted" '[ "$(metric images_refused "$TMP/m.prom")" -ge 17 ]'
check_refused 17
[ "$(grep -c "image $IMG/newbad.yolo refused: " "$TMP/yolofs.log")" = 1 ] || fail "newbad.yolo: not one line"
grep -q "reload: 3 images (2 kept, 1 new or replaced, 0 no longer listed), 9 errors" "$TMP/yolofs.log" ||
	fail "reload summary"
reads_all
wait_until "good3 serves" '[ "$(from_memory "$IMG/good3.yolo" 1)" -ge 262144 ]'
echo "B: good3 served $(from_memory "$IMG/good3.yolo" 1) bytes from memory after the reload; 9 refused"

note "C: SIGTERM exits 0 with comparisons of refused images queued or done"
sleep 1.2
yolofs_stop
no_sanitizer_report

note "D: insecure_images: the FIFO is refused, not waited on"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o "images=$IMG/fifo.yolo:$IMG/good1.yolo,insecure_images"
cmp -s "$MNT/good1.img" "$SRC/good1.img" || fail "good1 reads wrong"
yolofs_stop
grep -q "image $IMG/fifo.yolo refused: not a regular file" "$TMP/yolofs.log" || fail "FIFO not refused"
no_sanitizer_report
echo PASS

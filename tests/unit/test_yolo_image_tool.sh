#!/bin/bash
# test_yolo_image_tool.sh - the yolo-image command line on real files:
# inspect/verify/merge of good images print sensible output and exit 0;
# a changed source makes verify exit 1 naming the file; corrupt, truncated
# or missing images and bad usage exit 2 with one line naming the problem.
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "${YOLO_IMAGE:-}" ] && [ -x "${MKIMAGE:-}" ] || fail "YOLO_IMAGE/MKIMAGE not set (run through meson test)"
TMP=$(mktemp -d /tmp/yolo-tool.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
S=$TMP/src
mkdir -p "$S/base"
head -c 1000000 /dev/urandom >"$S/base/disk.qcow2"
head -c 10000 /dev/zero >"$S/zeros"
seq 1 20000 >"$S/text"
"$MKIMAGE" "$TMP/a.yolo" "$S" base/disk.qcow2:0:65536 zeros >/dev/null || fail "mkimage a"
"$MKIMAGE" -z 3 "$TMP/b.yolo" "$S" base/disk.qcow2:500000:100000 base/disk.qcow2:0:8192 text >/dev/null || fail "mkimage b"

# expect CODE PATTERN CMD...: exit status CODE and output matching PATTERN.
expect() {
	local code=$1 pat=$2 rc=0
	shift 2
	"$@" >"$TMP/out" 2>&1 || rc=$?
	[ "$rc" = "$code" ] || { cat "$TMP/out"; fail "$* exited $rc, expected $code"; }
	grep -Eq -- "$pat" "$TMP/out" || { cat "$TMP/out"; fail "$*: output lacks /$pat/"; }
}
one_line() { [ "$(wc -l <"$TMP/out")" = 1 ] || { cat "$TMP/out"; fail "error is not one line"; }; }

expect 0 "blocks: +19 \(3 zero" "$YOLO_IMAGE" inspect "$TMP/a.yolo"
expect 0 "6\.55% +base/disk\.qcow2" "$YOLO_IMAGE" inspect "$TMP/a.yolo"
expect 0 "features zstd" "$YOLO_IMAGE" inspect "$TMP/b.yolo"
expect 0 " 0 +0 +0 +4096 +raw +base/disk.qcow2" "$YOLO_IMAGE" inspect --blocks "$TMP/a.yolo"
expect 0 "19 blocks ok, 0 bad.*-> OK" "$YOLO_IMAGE" verify --source "$S" "$TMP/a.yolo"
expect 0 "a\.yolo.*OK" "$YOLO_IMAGE" verify "$TMP/a.yolo"
expect 0 "m\.yolo: 3 files, 71 blocks" "$YOLO_IMAGE" merge -o "$TMP/m.yolo" "$TMP/a.yolo" "$TMP/b.yolo"
expect 0 "features merged" "$YOLO_IMAGE" inspect "$TMP/m.yolo"

# The source changes: verify --source fails and names the file and block.
cp "$S/base/disk.qcow2" "$TMP/keep"
printf 'XXXX' | dd of="$S/base/disk.qcow2" bs=1 seek=4096 conv=notrunc status=none
touch -r "$TMP/keep" "$S/base/disk.qcow2"
expect 1 "base/disk\.qcow2 block 1: source bytes differ" "$YOLO_IMAGE" verify --source "$S" "$TMP/a.yolo"
rm "$S/zeros"
expect 1 "zeros: cannot open in source" "$YOLO_IMAGE" verify --source "$S" "$TMP/a.yolo"

# A flipped data byte: the image still opens, verify names the block.
cp "$TMP/a.yolo" "$TMP/bad.yolo"
printf '\xff' | dd of="$TMP/bad.yolo" bs=1 seek=$((4096 + 100)) conv=notrunc status=none
expect 1 "block 0: stored data does not match its checksum.*FAILED|FAILED" "$YOLO_IMAGE" verify "$TMP/bad.yolo"
# Corrupt header, index, truncation, garbage, missing: exit 2, one line.
cp "$TMP/a.yolo" "$TMP/hdr.yolo"; printf 'X' | dd of="$TMP/hdr.yolo" bs=1 seek=20 conv=notrunc status=none
expect 2 "header checksum mismatch" "$YOLO_IMAGE" inspect "$TMP/hdr.yolo"; one_line
size=$(stat -c %s "$TMP/a.yolo")
idx=$(od -An -t u8 -j 88 -N 8 "$TMP/a.yolo" | tr -d ' ')       # header field index_off
cp "$TMP/a.yolo" "$TMP/idx.yolo"; printf 'X' | dd of="$TMP/idx.yolo" bs=1 seek=$((idx + 10)) conv=notrunc status=none
expect 2 "metadata checksum mismatch" "$YOLO_IMAGE" verify "$TMP/idx.yolo"; one_line
head -c $((size - 48)) "$TMP/a.yolo" >"$TMP/trunc.yolo"
expect 2 "past the end of the file.*truncated" "$YOLO_IMAGE" inspect "$TMP/trunc.yolo"; one_line
head -c 100 "$TMP/a.yolo" >"$TMP/short.yolo"
expect 2 "truncated header" "$YOLO_IMAGE" inspect "$TMP/short.yolo"; one_line
head -c 4096 /dev/urandom >"$TMP/garbage.yolo"
expect 2 "not a YOLO boot image" "$YOLO_IMAGE" inspect "$TMP/garbage.yolo"; one_line
expect 2 "No such file" "$YOLO_IMAGE" inspect "$TMP/missing.yolo"; one_line
expect 2 "unknown command" "$YOLO_IMAGE" frobnicate
# Images of different sources do not merge, and nothing is written.
mkdir -p "$TMP/other/base"
head -c 2000000 /dev/urandom >"$TMP/other/base/disk.qcow2"
"$MKIMAGE" "$TMP/c.yolo" "$TMP/other" base/disk.qcow2:0:4096 >/dev/null || fail "mkimage c"
expect 2 "different size or mtime" "$YOLO_IMAGE" merge -o "$TMP/x.yolo" "$TMP/b.yolo" "$TMP/c.yolo"; one_line
[ ! -e "$TMP/x.yolo" ] || fail "failed merge left an output file"
[ -z "$(ls "$TMP" | grep tmp)" ] || fail "failed merge left a temporary file"
# Rebind for a copy of a source (new inodes): OK in place, then verify passes.
cp -r "$TMP/other" "$TMP/other2"
expect 1 "changed since capture" "$YOLO_IMAGE" verify --source "$TMP/other2" "$TMP/c.yolo"
expect 0 "1 files rebound.*OK" "$YOLO_IMAGE" rebind --source "$TMP/other2" "$TMP/c.yolo"
expect 0 "-> OK" "$YOLO_IMAGE" verify --source "$TMP/other2" "$TMP/c.yolo"
expect 2 "no file matches the source" "$YOLO_IMAGE" rebind --source "$TMP/other2" -o "$TMP/y.yolo" "$TMP/b.yolo"
[ ! -e "$TMP/y.yolo" ] || fail "failed rebind left an output file"
expect 2 "needs --source" "$YOLO_IMAGE" rebind "$TMP/c.yolo"
echo PASS

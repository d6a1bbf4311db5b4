#!/bin/bash
# Stale safety: a boot image must never win over the source.
#  A. Source modified behind the daemon's back before open (in place, same
#     size; replaced by a new inode; truncated): the new bytes are read.
#  B. Modified through the mount (writes in the middle of cached blocks,
#     truncate down and up, hole punching): reads return the new bytes,
#     buffered and O_DIRECT, every time.
#  C. Modified behind the daemon's back while another descriptor holds the
#     file open: a new open reads the new bytes.
#  D. Timestamps set through the mount (touch; open or not): still served
#     from the image; set behind the daemon's back: read from the source
#     until a background comparison of the captured blocks proves the bytes
#     unchanged, then served again.
#  E. Written through the mount keeping the size, then the mtime set back
#     through the mount (cp -p, rsync -t, tar x), the file closed between:
#     the written bytes are read, buffered and O_DIRECT.
#  F. The same edit made on the source directly: not served (its change
#     time moved, and the comparison finds the block).
#  G. Touched while no daemon ran: served again after a restart without
#     yolo-image rebind, once the background comparison has passed.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt REF=$TMP/ref
mkdir -p "$SRC" "$MNT" "$REF"
mkfiles() {
	for f in inplace replaced truncated written; do
		head -c 4194304 /dev/urandom >"$SRC/$f"
	done
}
image() { "$MKIMAGE" "$TMP/boot.yolo" "$SRC" inplace replaced truncated written || fail "mkimage"; }
# check NAME: the file reads the same as $REF/NAME through the mount, by
# several paths into the daemon.
check() {
	local f=$1
	cmp "$MNT/$f" "$REF/$f" || fail "$f: buffered read differs ($2)"
	dd if="$MNT/$f" iflag=direct bs=64k status=none | cmp - "$REF/$f" || fail "$f: O_DIRECT read differs ($2)"
	cmp <(dd if="$MNT/$f" iflag=skip_bytes,count_bytes skip=12289 count=20000 status=none) \
	    <(dd if="$REF/$f" iflag=skip_bytes,count_bytes skip=12289 count=20000 status=none) \
		|| fail "$f: unaligned read differs ($2)"
}
patch() {   # patch FILE OFFSET BYTES: same random bytes into both copies
	head -c "$3" /dev/urandom >"$TMP/patch"
	dd if="$TMP/patch" of="$1" bs="$3" count=1 seek="$2" oflag=seek_bytes conv=notrunc status=none
	[ -z "${4:-}" ] || dd if="$TMP/patch" of="$4" bs="$3" count=1 seek="$2" oflag=seek_bytes conv=notrunc status=none
}

note "A: changed behind the daemon's back before open"
mkfiles; image
sleep 0.02   # let the clock move so an in-place change shows in mtime
patch "$SRC/inplace" 1000000 5000                      # same size, new mtime
head -c 4194304 /dev/urandom >"$TMP/new" && mv "$TMP/new" "$SRC/replaced"   # new inode
truncate -s 3000000 "$SRC/truncated"
cp "$SRC"/inplace "$SRC"/replaced "$SRC"/truncated "$REF/"
drop_caches
yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom"
for f in inplace replaced truncated; do check $f "changed before open"; done
yolofs_stop
[ "$(metric files_stale "$TMP/m.prom")" -gt 0 ] || fail "stale files were not reported"
[ "$(served "$TMP/m.prom")" = 0 ] || fail "stale files were served from the image"
grep -q "inplace: changed since capture" "$TMP/yolofs.log" || fail "staleness not logged"

# Once with the page-cache prefill at open (default), once through the read
# path only, so invalidation is checked in the kernel cache and in yolofs.
for extra in "" ",no_prefill"; do
	note "B: changed through the mount (${extra:-with prefill})"
	mkfiles; image
	cp "$SRC/written" "$REF/written"
	drop_caches
	yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom$extra"
	check written "before writing"
	# Keep a descriptor open throughout, as QEMU does: the file's image state
	# then lives on and must be invalidated (a fresh open after a write would
	# just see a changed mtime and drop the whole file).
	exec 7<"$MNT/written"
	patch "$MNT/written" 5000 100 "$REF/written";        check written "write inside one block"
	patch "$MNT/written" 8190 10 "$REF/written";         check written "write across a block boundary"
	patch "$MNT/written" 65536 4096 "$REF/written";      check written "aligned block write"
	# copy_file_range between files of the mount reaches yolofs's handler
	# (into blocks no earlier step invalidated).
	head -c 70000 /dev/urandom >"$TMP/donor"
	cp "$TMP/donor" "$MNT/donor"
	"$HELPERS/seekcopy" copy "$MNT/donor" 0 "$MNT/written" 100000 70000 || fail "copy_file_range"
	"$HELPERS/seekcopy" copy "$TMP/donor" 0 "$REF/written" 100000 70000 || fail "copy_file_range (ref)"
	check written "copy_file_range into cached blocks"
	patch "$MNT/written" 2000001 300000 "$REF/written";  check written "large unaligned write"
	patch "$MNT/written" 3000000 1 "$REF/written";       check written "one-byte write"
	truncate -s 1234567 "$MNT/written"; truncate -s 1234567 "$REF/written"; check written "truncate down mid-block"
	truncate -s 4194304 "$MNT/written"; truncate -s 4194304 "$REF/written"; check written "truncate back up"
	if fallocate -p -o 20000 -l 50000 "$MNT/written" 2>/dev/null; then
		fallocate -p -o 20000 -l 50000 "$REF/written"; check written "punch hole"
	fi
	drop_caches
	check written "after dropping caches"
	exec 7<&-
	yolofs_stop
	cmp "$SRC/written" "$REF/written" || fail "source differs from reference after writes"
	[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "image not used before the writes"
	[ "$(metric invalidations "$TMP/m.prom")" -gt 0 ] || fail "writes did not invalidate image blocks"
done

note "C: changed behind the daemon's back while open"
mkfiles; image
drop_caches
yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom"
exec 8<"$MNT/inplace"
cat "$MNT/inplace" >/dev/null
sleep 0.02
patch "$SRC/inplace" 100000 7000
cp "$SRC/inplace" "$REF/inplace"
check inplace "changed while open"
exec 8<&-
check inplace "changed while open, after close"
yolofs_stop

note "D: timestamps set through the mount (nova touches its base files)"
mkfiles; image
cp "$SRC"/* "$REF/"
drop_caches
logstart=$(wc -l <"$TMP/yolofs.log")
yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom,metrics_interval=1"
touch -c "$MNT/inplace"                         # not open: its next open is still served
exec 8<"$MNT/replaced"
touch -d "2001-02-03 04:05:06" "$MNT/replaced"  # open: its reads and later opens are too
check replaced "touched while open"
exec 8<&-
sleep 0.02
touch -c "$SRC/truncated"                       # behind the daemon's back: compared first
for f in inplace replaced truncated; do drop_caches; check $f "after a touch"; done
wait_until "the file touched underneath is compared" 'grep -q "truncated: captured blocks equal the source" "$TMP/yolofs.log"'
sleep 1.2                                       # one metrics interval
hits0=$(served "$TMP/m.prom")
drop_caches
check truncated "compared, then served again"
sleep 1.2
[ "$(served "$TMP/m.prom")" -gt "$hits0" ] || fail "the file touched underneath was not served again after the comparison"
[ "$(stat -c %Y "$MNT/replaced")" = "$(date -d "2001-02-03 04:05:06" +%s)" ] || fail "mtime not set through the mount"
patch "$MNT/written" 0 10 "$REF/written"        # a write after a touch: not served stale
touch -c "$MNT/written"
drop_caches
check written "written, then touched"
yolofs_stop
[ "$(metric touches "$TMP/m.prom")" -ge 2 ] || fail "touches through the mount were not counted"
[ "$(metric files_stale "$TMP/m.prom")" -ge 1 ] || fail "a touch behind the daemon's back was served before a comparison"
[ "$(metric compared_equal "$TMP/m.prom")" -ge 1 ] || fail "the comparison was not counted"
tail -n +$((logstart + 1)) "$TMP/yolofs.log" >"$TMP/log.d"
grep -q "inplace: attributes changed through the mount" "$TMP/log.d" || fail "touch not logged"
! grep -q "inplace: .*differs\|replaced: .*differs\|changed since" "$TMP/log.d" ||
	fail "a file touched through the mount was refused as stale"
grep -q "truncated: mtime differs from image .*comparing" "$TMP/log.d" || fail "the touch behind the daemon's back was not noticed"

note "E: written through the mount, then its mtime set back through the mount"
mkfiles; image
cp "$SRC"/* "$REF/"
cp -p "$SRC/written" "$TMP/stamp.written"
cp -p "$SRC/inplace" "$TMP/stamp.inplace"
drop_caches
yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom,metrics_interval=1"
check written "before the edit"
check inplace "before the edit"
dd if=/dev/urandom of="$TMP/patch" bs=4096 count=2 status=none
dd if="$TMP/patch" of="$MNT/written" bs=4096 seek=3 conv=notrunc status=none   # same size
dd if="$TMP/patch" of="$REF/written" bs=4096 seek=3 conv=notrunc status=none
touch -r "$TMP/stamp.written" "$MNT/written"                                  # as cp -p does
[ "$(stat -c %y "$MNT/written")" = "$(stat -c %y "$TMP/stamp.written")" ] || fail "mtime not set back"
check written "written and mtime set back, through the mount"
drop_caches
check written "written and mtime set back, caches dropped"

note "F: the same edit on the source directly"
dd if="$TMP/patch" of="$SRC/inplace" bs=4096 seek=5 conv=notrunc status=none
dd if="$TMP/patch" of="$REF/inplace" bs=4096 seek=5 conv=notrunc status=none
touch -r "$TMP/stamp.inplace" "$SRC/inplace"
drop_caches
check inplace "edited on the source, mtime set back"
wait_until "the edited file is compared" 'grep -q "inplace: changed since capture" "$TMP/yolofs.log"'
drop_caches
check inplace "edited on the source, after the comparison"
yolofs_stop

note "G: touched while no daemon ran, then a restart"
mkfiles; image
cp "$SRC"/* "$REF/"
sleep 0.02
touch -c "$SRC/replaced"                        # nova's touch, daemon down
logstart=$(wc -l <"$TMP/yolofs.log")
yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom,metrics_interval=1"
wait_until "the touched file is compared at start" 'tail -n +$((logstart + 1)) "$TMP/yolofs.log" | grep -q "replaced: captured blocks equal the source"'
drop_caches
check replaced "touched while the daemon was down"
sleep 1.2
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "the file touched while the daemon was down was not served again"
yolofs_stop
echo PASS

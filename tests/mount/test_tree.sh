#!/bin/bash
# Tree, contents and metadata through the mount equal the source: without
# images, with images (memory and ssd serving, two block sizes, zstd), and
# mounted over the source itself.  Also O_DIRECT reads and flock locks.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC/dir/sub/deeper" "$SRC/empty" "$MNT"
head -c 5242880 /dev/urandom >"$SRC/random.bin"
head -c 1048699 /dev/urandom >"$SRC/dir/odd.bin"
for n in 0 1 4095 4096 4097 65537; do head -c $n /dev/urandom >"$SRC/dir/sub/f$n"; done
printf 'hello\n' >"$SRC/dir/sub/deeper/hello.txt"
truncate -s 3M "$SRC/sparse.bin"
printf 'island' | dd of="$SRC/sparse.bin" bs=1 seek=2000000 conv=notrunc status=none
yes yolo | head -c 300000 >"$SRC/text.txt"
ln -s random.bin "$SRC/link"
ln -s /nonexistent/target "$SRC/dir/dangling"
ln "$SRC/text.txt" "$SRC/dir/hardlink.txt"
mkfifo "$SRC/fifo"
mknod "$SRC/whiteout" c 0 0
chmod 0640 "$SRC/dir/odd.bin"; chmod 1777 "$SRC/empty"; chmod 4755 "$SRC/dir/sub/f1"
chown 1234:4321 "$SRC/dir/sub/f4096"
touch -d '2001-02-03 04:05:06.123456789' "$SRC/dir/sub/f0"
"$HELPERS/xattr" set "$SRC/text.txt" user.colour blue || skip "no user xattrs on $SRC"
"$HELPERS/xattr" set "$SRC/dir" trusted.overlay.opaque y
"$HELPERS/xattr" set "$SRC/whiteout" trusted.note zero

IMG=$TMP/images; mkdir -p "$IMG"
"$MKIMAGE" "$IMG/a.yolo" "$SRC" random.bin:100000:2000000 dir/sub/f4097 dir/sub/f65537 \
	sparse.bin text.txt || fail "mkimage a"
"$MKIMAGE" -b 65536 -z 3 "$IMG/b.yolo" "$SRC" dir/odd.bin random.bin:every:3 dir/sub/f4095 \
	|| fail "mkimage b"

note "plain pass-through"
yolofs_start "$SRC" "$MNT"
same_tree "$SRC" "$MNT"
dd if="$MNT/random.bin" iflag=direct bs=1M status=none | cmp - "$SRC/random.bin" || fail "O_DIRECT read"
# flock: the kernel keeps locks locally; a conflicting lock must be refused.
flock -x "$MNT/text.txt" sleep 2 & LPID=$!
sleep 0.5
if flock -n -x "$MNT/text.txt" true; then fail "conflicting flock was granted"; fi
wait $LPID
flock -n -x "$MNT/text.txt" true || fail "flock after release"
# SEEK_DATA/SEEK_HOLE see the source's extents (sparse files stay sparse).
"$HELPERS/seekcopy" map "$SRC/sparse.bin" >"$TMP/map.src" || fail "seek map of the source"
"$HELPERS/seekcopy" map "$MNT/sparse.bin" >"$TMP/map.mnt" || fail "seek map through the mount"
diff -u "$TMP/map.src" "$TMP/map.mnt" || fail "SEEK_DATA/SEEK_HOLE differ through the mount"
yolofs_stop

# Memory mode with the page-cache prefill (default), SSD mode through the
# read path only, so both ways image data reaches readers are compared.
for serve in memory ssd; do
	note "with images, serve=$serve"
	extra=""; [ $serve = ssd ] && extra=",no_prefill"
	drop_caches
	yolofs_start "$SRC" "$MNT" -o "images=$IMG,serve=$serve,metrics=$TMP/m.prom$extra"
	same_tree "$SRC" "$MNT"
	dd if="$MNT/random.bin" iflag=direct bs=1M status=none | cmp - "$SRC/random.bin" \
		|| fail "O_DIRECT read with images"
	# Unaligned reads crossing image/source boundaries.
	for spec in "1 99999" "4095 2" "100001 70000" "2099999 3" "5242000 9999"; do
		set -- $spec
		cmp <(dd if="$MNT/random.bin" iflag=skip_bytes,count_bytes skip=$1 count=$2 status=none) \
		    <(dd if="$SRC/random.bin" iflag=skip_bytes,count_bytes skip=$1 count=$2 status=none) \
			|| fail "unaligned read $spec"
	done
	yolofs_stop
	hits=$(metric hits "$TMP/m.prom")
	[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "image not used with serve=$serve"
	[ $serve = memory ] || [ "$hits" -gt 0 ] || fail "no read-path hits with serve=$serve"
	[ "$(metric files_stale "$TMP/m.prom")" = 0 ] || fail "files reported stale"
	echo "serve=$serve: $hits hits, $(metric misses "$TMP/m.prom") misses, $(metric bytes_prefilled "$TMP/m.prom") bytes prefilled"
done

note "mount over the source (SOURCE == MOUNTPOINT)"
cp -a "$SRC" "$TMP/ref"
# cp -a keeps mtimes but not inode numbers; compare those separately.
(cd "$SRC" && find . -mindepth 1 -printf '%P %i\n' | LC_ALL=C sort) >"$TMP/inodes.src"
drop_caches
yolofs_start "$SRC" "$SRC" -o "images=$IMG,metrics=$TMP/m.prom"
NOINO=1 same_tree "$TMP/ref" "$SRC"
(cd "$SRC" && find . -mindepth 1 -printf '%P %i\n' | LC_ALL=C sort) | diff - "$TMP/inodes.src" \
	|| fail "inode numbers differ through the mount-over"
echo new >"$SRC/created-through-mount"
yolofs_stop
[ "$(cat "$SRC/created-through-mount")" = new ] || fail "write through mount-over lost"
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "image not used through mount-over"
echo "PASS"

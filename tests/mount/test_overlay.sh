#!/bin/bash
# overlayfs with its lower layers on the yolofs mount: reads, writes
# (copy-up), creates, deletes (whiteouts), renames and opaque directories
# behave exactly as with the same layers on the plain source.
. "$(dirname "$0")/lib.sh"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
grep -qw overlay /proc/filesystems || skip "no overlayfs"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC/l0/etc" "$SRC/l0/usr/lib" "$SRC/l0/opaque" "$SRC/l1/etc" "$SRC/l1/opaque" "$MNT"
head -c 2000000 /dev/urandom >"$SRC/l0/usr/lib/libbig.so"
head -c 70000 /dev/urandom >"$SRC/l0/usr/lib/libsmall.so"
echo "base config" >"$SRC/l0/etc/config"
echo "will be whited out" >"$SRC/l0/etc/gone"
echo "hidden by opaque" >"$SRC/l0/opaque/old"
echo "l1 config" >"$SRC/l1/etc/config"
echo "l1 file" >"$SRC/l1/opaque/new"
mknod "$SRC/l1/etc/gone" c 0 0                       # whiteout in the upper lower layer
"$HELPERS/xattr" set "$SRC/l1/opaque" trusted.overlay.opaque y || skip "no trusted xattrs"
ln -s usr/lib "$SRC/l0/lib"
"$MKIMAGE" "$TMP/boot.yolo" "$SRC" l0/usr/lib/libbig.so l0/usr/lib/libsmall.so:0:8192 \
	l1/etc/config || fail "mkimage"
cp -a "$SRC" "$TMP/lower-before"

yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,metrics=$TMP/m.prom"

# setup_overlay NAME LOWERROOT: merged dir at $TMP/NAME/merged.
setup_overlay() {
	local d=$TMP/$1
	mkdir -p "$d/upper" "$d/work" "$d/merged"
	mount -t overlay overlay -o "lowerdir=$2/l1:$2/l0,upperdir=$d/upper,workdir=$d/work" \
		"$d/merged" || fail "mount overlay with lowerdir on $2"
	EXTRA_MNTS+=("$d/merged")
}
setup_overlay fuse "$MNT"
setup_overlay plain "$SRC"

exercise() {
	local m=$1
	cat "$m/usr/lib/libbig.so" "$m/usr/lib/libsmall.so" >/dev/null || return 1
	[ ! -e "$m/etc/gone" ] || { echo "whiteout not honoured in $m" >&2; return 1; }
	[ ! -e "$m/opaque/old" ] || { echo "opaque dir not honoured in $m" >&2; return 1; }
	echo "appended" >>"$m/etc/config"                          # copy-up of a lower file
	printf 'XYZ' | dd of="$m/usr/lib/libbig.so" bs=1 seek=1000000 conv=notrunc status=none
	echo "fresh" >"$m/etc/new-file"
	rm "$m/usr/lib/libsmall.so"                                # whiteout in upper
	rm -r "$m/opaque"
	mkdir "$m/opaque" && echo again >"$m/opaque/again"
	mv "$m/etc/config" "$m/etc/config.renamed"
	ln -s config.renamed "$m/etc/cfg-link"
}
exercise "$TMP/fuse/merged" || fail "operations in the merged dir over yolofs"
exercise "$TMP/plain/merged" || fail "operations in the merged dir over the plain source"
NOINO=1 NOTIME=1 same_tree "$TMP/plain/merged" "$TMP/fuse/merged"
# The upper layers got the same whiteouts and copies.
for d in plain fuse; do
	[ "$(stat -c '%F %t:%T' "$TMP/$d/upper/usr/lib/libsmall.so")" = "character special file 0:0" ] \
		|| fail "no whiteout in the $d upper dir"
done
umount "$TMP/fuse/merged" && umount "$TMP/plain/merged" && EXTRA_MNTS=()
# Remount and read again: the merged view persists identically.
setup_overlay fuse "$MNT"
setup_overlay plain "$SRC"
NOINO=1 NOTIME=1 same_tree "$TMP/plain/merged" "$TMP/fuse/merged"
umount "$TMP/fuse/merged" && umount "$TMP/plain/merged" && EXTRA_MNTS=()
yolofs_stop
# Copy-up never modifies the lower layers.
NOINO=1 same_tree "$TMP/lower-before" "$SRC"
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "image not used through overlayfs"
echo "image hits $(metric hits "$TMP/m.prom"), bytes prefilled $(metric bytes_prefilled "$TMP/m.prom")"
echo PASS

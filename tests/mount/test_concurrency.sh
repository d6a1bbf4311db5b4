#!/bin/bash
# Concurrency: four reader processes (half O_DIRECT, half through the page
# cache) and one writer work on the same image-served file through the
# mount; every sector read must be intact and no older than the last write
# completed before the read began, and the final file must equal a shadow
# copy written alongside (see rwstress.c).  Then the same again served from
# the image file (serve=ssd) with a small block size.
. "$(dirname "$0")/lib.sh"

SRC=$TMP/src MNT=$TMP/mnt
mkdir -p "$SRC" "$MNT"
for serve in memory ssd; do
	note "serve=$serve"
	"$RWSTRESS" init "$SRC/disk.img" "$TMP/shadow" 16384 || fail "rwstress init"   # 8 MiB
	bs=4096; [ $serve = ssd ] && bs=1024
	"$MKIMAGE" -b $bs "$TMP/boot.yolo" "$SRC" disk.img || fail "mkimage"
	drop_caches
	yolofs_start "$SRC" "$MNT" -o "images=$TMP/boot.yolo,serve=$serve,metrics=$TMP/m.prom"
	# Hold the file open so its image state lives through the whole run.
	exec 7<"$MNT/disk.img"
	"$RWSTRESS" run "$MNT/disk.img" "$TMP/shadow" 4 8 || fail "rwstress found mismatches (serve=$serve)"
	exec 7<&-
	yolofs_stop
	cmp "$SRC/disk.img" "$TMP/shadow" || fail "source differs from the shadow copy"
	hits=$(metric hits "$TMP/m.prom") inval=$(metric invalidations "$TMP/m.prom")
	echo "image hits $hits, invalidations $inval"
	[ "$hits" -gt 0 ] || fail "no image hits: the test did not exercise the image"
	[ "$inval" -gt 0 ] || fail "no invalidations: the test did not exercise them"
	# Writes through the mount must never look like outside changes (that
	# would mean a reader saw a half-finished write and gave up the image).
	! grep -q "behind the daemon's back" "$TMP/yolofs.log" || fail "image disabled during the run"
done
echo PASS

#!/bin/bash
# Only trusted boot images are served.  An "evil" image holds other bytes
# than the source file but claims that file's exact identity (size, mtime,
# change time, inode: what anyone who can stat it sees), so only the trust
# check keeps it from being served.  It is refused, with one log line and a
# metric, while the other images keep working, when it is
#   A. owned by an unprivileged user,
#   B. writable by its group,
#   C. in a directory writable by others (any directory up to / counts),
#   D. swapped in as a symlink after the daemon started (SIGHUP reload),
#      pointing into a directory writable by others;
# and a root-owned 0644 image in a root-owned 0755 directory is served.
# insecure_images (tests only) loads what the check refuses.
. "$(dirname "$0")/lib.sh"
SRC=$TMP/src MNT=$TMP/mnt IMG=$TMP/images
mkdir -p "$SRC" "$MNT" "$IMG"
chmod 755 "$TMP" "$IMG"
head -c 1048576 /dev/urandom >"$SRC/base.img"
head -c 1048576 /dev/urandom >"$SRC/other.img"
# The evil image: built from different bytes, then stamped with base.img's identity.
mkdir -p "$TMP/forge"
head -c 1048576 /dev/urandom >"$TMP/forge/base.img"
"$MKIMAGE" "$TMP/evil.yolo" "$TMP/forge" base.img || fail "mkimage (evil)"
"$HELPERS/craftimage" "$TMP/evil.yolo" base.img stamp "$SRC/base.img" || fail "craftimage stamp"
"$MKIMAGE" "$IMG/other.yolo" "$SRC" other.img || fail "mkimage (good)"
chmod 644 "$IMG/other.yolo"

# run CASE IMAGE EXPECT: mount with IMAGE and the good image, read both
# files, and check the outcome (refused|served).
run() {
	local what=$1 image=$2 expect=$3 extra=${4:-}
	: >"$TMP/yolofs.log"
	drop_caches
	yolofs_start "$SRC" "$MNT" -o "images=$image:$IMG/other.yolo,metrics=$TMP/m.prom$extra"
	cmp -s "$MNT/other.img" "$SRC/other.img" || fail "$what: the good image's file reads wrong"
	local got=served
	cmp -s "$MNT/base.img" "$SRC/base.img" && got=refused
	yolofs_stop
	local refused=$(metric images_refused "$TMP/m.prom") lines
	lines=$(grep -c " refused: " "$TMP/yolofs.log")
	echo "$what: $got ($refused refused, $lines log line(s)): $(grep -m1 refused "$TMP/yolofs.log" | sed 's/^yolofs: //')"
	[ "$got" = "$expect" ] || fail "$what: the evil image was $got"
	[ "$(image_metric bytes_prefilled_total "$IMG/other.yolo" 0 "$TMP/m.prom")" -gt 0 ] ||
		fail "$what: the good image was not served (the rest must keep working)"
	if [ "$expect" = refused ]; then
		[ "$refused" = 1 ] && [ "$lines" = 1 ] || fail "$what: expected one refusal line and metric"
	fi
}

note "the evil image is served when trusted (so the cases below test the trust check alone)"
cp "$TMP/evil.yolo" "$IMG/evil.yolo" && chmod 644 "$IMG/evil.yolo"
run "root-owned 0644 in a root-owned 0755 directory" "$IMG/evil.yolo" served

note "A: owned by an unprivileged user"
chown 65534 "$IMG/evil.yolo"
run "owned by uid 65534" "$IMG/evil.yolo" refused
chown 0 "$IMG/evil.yolo"

note "B: writable by its group"
chmod 664 "$IMG/evil.yolo"
run "mode 0664" "$IMG/evil.yolo" refused
chmod 644 "$IMG/evil.yolo"

note "C: in a directory writable by others"
mkdir -p "$TMP/shared" && chmod 1777 "$TMP/shared"
cp "$TMP/evil.yolo" "$TMP/shared/evil.yolo" && chmod 644 "$TMP/shared/evil.yolo"
run "in a 1777 directory" "$TMP/shared/evil.yolo" refused
run "in a 1777 directory, insecure_images" "$TMP/shared/evil.yolo" served ",insecure_images"

note "D: a symlink swapped in after the check (reload)"
mkdir -p "$TMP/d"
"$MKIMAGE" "$TMP/d/base.yolo" "$SRC" base.img || fail "mkimage (good base)"
chmod 755 "$TMP/d"
: >"$TMP/yolofs.log"
yolofs_start "$SRC" "$MNT" -o "images=$TMP/d,metrics=$TMP/m.prom,metrics_interval=1"
cmp "$MNT/base.img" "$SRC/base.img" || fail "the good image served wrong bytes"
before=$(image_metric bytes_prefilled_total "$TMP/d/base.yolo" 0 "$TMP/m.prom")
ln -sf "$TMP/shared/evil.yolo" "$TMP/d/.swap" && mv -T "$TMP/d/.swap" "$TMP/d/base.yolo"
kill -HUP "${PIDS[-1]}"
wait_until "the reload refuses the swapped-in symlink" 'grep -q "refused" "$TMP/yolofs.log"'
drop_caches
cmp "$MNT/base.img" "$SRC/base.img" || fail "the swapped-in image was served"
sleep 1.2
yolofs_stop
grep refused "$TMP/yolofs.log"
[ "$(grep -c " refused: " "$TMP/yolofs.log")" = 1 ] || fail "expected one refusal line"
[ "$(metric images_refused "$TMP/m.prom")" = 1 ] || fail "refusal not counted"
echo PASS

#!/bin/bash
# test_docker_capture.sh - yolo-capture records a real container start.
#
# Starts Debian's dockerd (own data root and socket, no networking), imports
# a small rootfs (busybox plus data files) as an image, then captures
# `docker run` of it with the image's layer directory (overlay2 diff/) as
# SOURCE, recording through the in-place FUSE layer that overlayfs uses as
# its lowerdir.  The boot image must hold what the container read (busybox,
# the data it cat'ed) and verify against the layer.  Then the container is
# run again with yolofs serving that image in place over the layer: same
# output, image used, and docker intact after unmounting.
source "$(dirname "$0")/../mount/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
[ -n "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"
trap 'dockerd_stop; cleanup' EXIT
dockerd_start

note "importing a rootfs"
R=$TMP/rootfs
busybox_rootfs "$R"
head -c 3000000 /dev/urandom >"$R/data/big.bin"          # read partly
head -c 200000 /dev/urandom >"$R/data/small.bin"         # read whole
head -c 1000000 /dev/urandom >"$R/data/unread.bin"       # never read
tar -C "$R" -cf "$TMP/rootfs.tar" .
dk import "$TMP/rootfs.tar" yolo-test:1 >/dev/null || fail "docker import"
LAYER=$(dk image inspect -f '{{.GraphDriver.Data.UpperDir}}' yolo-test:1)
[ -d "$LAYER" ] || fail "no overlay2 layer directory for the image"
echo "layer: $LAYER"

RUN=(run --rm --network none yolo-test:1 /bin/sh -c
     'head -c 65536 /data/big.bin | md5sum; md5sum /data/small.bin; ls /data | head -c 100')
dk "${RUN[@]}" >"$TMP/expected" || fail "docker run on the plain layer"

note "capturing docker run"
"$YOLO_CAPTURE" -o "$TMP/ctr.yolo" -t "$TMP/ctr.trace" "$LAYER" -- "$DOCKER" -H "unix://$SOCK" "${RUN[@]}" \
	>"$TMP/capture.out" 2>"$TMP/capture.err" || { cat "$TMP/capture.err"; fail "yolo-capture failed"; }
cat "$TMP/capture.out"
findmnt -n -M "$LAYER" >/dev/null && fail "capture left its mount on the layer"
"$YOLO_IMAGE" inspect "$TMP/ctr.yolo" >"$TMP/inspect" || fail "inspect"
cat "$TMP/inspect"
grep -q " bin/busybox$" "$TMP/inspect" || fail "busybox reads not captured"
grep -q " data/small.bin$" "$TMP/inspect" || fail "data/small.bin reads not captured"
grep -q " data/big.bin$" "$TMP/inspect" || fail "data/big.bin reads not captured"
! grep -q "unread.bin" "$TMP/inspect" || fail "a file nobody read is in the image"
# big.bin: only its first 64 KiB (plus what readahead-free direct reads
# touched) may be in the image, far from all 3 MB.
big_blocks=$(awk '$NF == "data/big.bin" { print $3 }' "$TMP/inspect")
[ "$big_blocks" -ge 16 ] && [ "$big_blocks" -lt 200 ] || fail "data/big.bin: $big_blocks blocks captured"
"$YOLO_IMAGE" verify --source "$LAYER" "$TMP/ctr.yolo" || fail "image does not verify against the layer"

note "serving the image with yolofs in place over the layer"
drop_caches
yolofs_start "$LAYER" "$LAYER" -o "images=$TMP/ctr.yolo,metrics=$TMP/m.prom"
dk "${RUN[@]}" >"$TMP/served" || fail "docker run on yolofs"
diff -u "$TMP/expected" "$TMP/served" || fail "container output differs on yolofs"
yolofs_stop
echo "served: hits $(metric hits "$TMP/m.prom"), bytes prefilled $(metric bytes_prefilled "$TMP/m.prom"), stale $(metric files_stale "$TMP/m.prom")"
[ "$(served "$TMP/m.prom")" -gt 0 ] || fail "image not used by the container"
[ "$(metric files_stale "$TMP/m.prom")" = 0 ] || fail "layer files reported stale"
dk "${RUN[@]}" >"$TMP/after" || fail "docker run after unmounting"
diff -u "$TMP/expected" "$TMP/after" || fail "docker broken after unmounting yolofs"
echo PASS

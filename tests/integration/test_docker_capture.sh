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

DOCKERD=$(command -v dockerd) || skip "dockerd missing (apt-get install docker.io)"
DOCKER=/usr/bin/docker; [ -x $DOCKER ] || DOCKER=$(command -v docker) || skip "docker client missing"
BUSYBOX=$(command -v busybox) || skip "busybox missing (apt-get install busybox-static)"
ldd "$BUSYBOX" 2>&1 | grep -q "not a dynamic" || skip "busybox is not static (apt-get install busybox-static)"
[ -n "${YOLO_CAPTURE:-}" ] || skip "YOLO_CAPTURE is not set (run through meson test)"

SOCK=$TMP/docker.sock
dk() { "$DOCKER" -H "unix://$SOCK" "$@"; }
stop_dockerd() {
	[ -f "$TMP/dockerd.pid" ] || return 0
	kill "$(cat "$TMP/dockerd.pid")" 2>/dev/null
	for i in $(seq 100); do kill -0 "$(cat "$TMP/dockerd.pid")" 2>/dev/null || break; sleep 0.1; done
	# Anything dockerd left mounted under its data root goes before rm -rf.
	findmnt -rn -o TARGET | grep "^$TMP/docker" | sort -r | xargs -r -n1 umount -l
	rm -f "$TMP/dockerd.pid"
}
trap 'stop_dockerd; cleanup' EXIT

note "starting dockerd"
"$DOCKERD" --data-root "$TMP/docker" --exec-root "$TMP/exec" -H "unix://$SOCK" \
	--pidfile "$TMP/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
	--storage-driver=overlay2 >"$TMP/dockerd.log" 2>&1 &
for i in $(seq 150); do dk info >/dev/null 2>&1 && break; sleep 0.2; done
dk info >/dev/null 2>&1 || { tail "$TMP/dockerd.log"; skip "dockerd did not start here"; }

note "importing a rootfs"
R=$TMP/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/data" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp "$BUSYBOX" "$R/bin/busybox"
for c in sh cat ls md5sum head; do ln -s busybox "$R/bin/$c"; done
echo "root:x:0:0:root:/:/bin/sh" >"$R/etc/passwd"
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

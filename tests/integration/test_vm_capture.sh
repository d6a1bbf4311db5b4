#!/bin/bash
# test_vm_capture.sh - capture a real Debian VM boot, then boot it again
# served by yolofs.
#
# The VM image comes from scripts/vm-image.sh, in $YOLO_VM_CACHE (default
# /var/cache/yolo/vm): a no-op when it is cached, a few minutes of
# debootstrap when not (.ci/run builds it before the tests).  The test skips
# only without qemu-system-x86_64.  The base image, kernel and initrd
# are read through yolo-capture's recording layer while QEMU (TCG) boots to
# "YOLO: boot done" and powers off; the boot image must hold a few percent
# of the base image.  Then yolofs serves that image over the same directory
# and the VM must boot again, with most of what the kernel fetched coming
# from the image (reported as a hit ratio, once with the page-cache prefill
# and once through the read path only).
source "$(dirname "$0")/../mount/lib.sh"

ROOT=${YOLO_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${YOLO_VM_CACHE:-/var/cache/yolo/vm}
NAME=${YOLO_VM_NAME:-debian12}
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -n "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"
if [ "$NAME" = debian12 ]; then
	"$ROOT/scripts/vm-image.sh" --out "$CACHE" || fail "scripts/vm-image.sh could not build the VM image"
else   # a variant built by hand: its vm-image.sh options are not known here
	[ -f "$CACHE/$NAME.qcow2" ] || fail "no $CACHE/$NAME.qcow2 (YOLO_VM_NAME=$NAME)"
fi
BOOT=$ROOT/scripts/vm-boot.sh

# Work on a private copy of the VM files so nothing else changes them while
# the test runs (reflink/sparse copy: cheap), under vm-image.sh's lock so a
# concurrent rebuild cannot hand us a mixed set.
SRC=$TMP/vm
mkdir -p "$SRC" "$TMP/capmnt" "$TMP/mnt"
flock -s "$CACHE/.build.lock" cp --sparse=always --reflink=auto -p "$CACHE/$NAME.qcow2" "$CACHE/$NAME.vmlinuz" "$CACHE/$NAME.initrd" "$SRC/"

note "capturing a boot"
"$YOLO_CAPTURE" -q -o "$TMP/vm.yolo" -t "$TMP/vm.trace" --mountpoint "$TMP/capmnt" "$SRC" -- \
	"$BOOT" --backing-dir "$TMP/capmnt" --image "$NAME.qcow2" --timeout 600 >"$TMP/capture.out" 2>"$TMP/capture.err" \
	|| { tail -n 30 "$TMP/capture.err"; fail "capture of the VM boot failed"; }
cat "$TMP/capture.out"
grep -q "^boot_done_seconds=" "$TMP/capture.out" || fail "the captured boot did not finish"
"$YOLO_IMAGE" inspect "$TMP/vm.yolo" | tee "$TMP/inspect"
"$YOLO_IMAGE" verify --source "$SRC" "$TMP/vm.yolo" || fail "image does not verify against the VM files"
cover=$(awk -v f="$NAME.qcow2" '$NF == f { sub("%", "", $4); print $4 }' "$TMP/inspect")
echo "base image coverage: $cover%"
awk -v c="$cover" 'BEGIN { exit !(c > 0.5 && c < 30) }' || fail "implausible base-image coverage $cover%"

boot_served() {   # boot_served EXTRA_OPTS LABEL
	drop_caches
	yolofs_start "$SRC" "$TMP/mnt" -o "images=$TMP/vm.yolo,metrics=$TMP/m.prom$1"
	"$BOOT" --backing-dir "$TMP/mnt" --image "$NAME.qcow2" --timeout 600 >"$TMP/boot.out" 2>"$TMP/boot.err" \
		|| { tail -n 30 "$TMP/boot.err"; fail "VM did not boot on yolofs ($2)"; }
	yolofs_stop
	local t img src hits misses
	t=$(sed -n 's/^boot_done_seconds=//p' "$TMP/boot.out")
	img=$(($(metric bytes_prefilled "$TMP/m.prom") + $(metric bytes_memory "$TMP/m.prom")))
	src=$(metric bytes_source "$TMP/m.prom")
	hits=$(metric hits "$TMP/m.prom") misses=$(metric misses "$TMP/m.prom")
	echo "$2: boot done after ${t}s; from the image $img bytes, from the source $src bytes" \
	     "(byte hit ratio $(awk -v a="$img" -v b="$src" 'BEGIN { printf "%.1f%%", 100 * a / (a + b) }')); read path: $hits hit, $misses missed blocks"
	[ "$(metric files_stale "$TMP/m.prom")" = 0 ] || fail "VM files reported stale"
	awk -v a="$img" -v b="$src" 'BEGIN { exit !(a > b) }' || fail "most of the boot did not come from the image ($2)"
}
note "booting on yolofs (prefill)"
boot_served "" "prefill"
note "booting on yolofs (read path only)"
boot_served ",no_prefill" "no_prefill"
echo PASS

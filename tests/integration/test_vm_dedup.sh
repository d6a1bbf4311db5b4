#!/bin/bash
# test_vm_dedup.sh - memory for the boot images of two real, different
# Debian VM images, captured separately, held with and without dedup.
#
# Needs debian12 and debian12-nginx from scripts/vm-image.sh (two separate
# debootstraps; the second adds nginx) in $YOLO_VM_CACHE (default
# /var/cache/yolo/vm); builds whichever is not cached (minutes each; .ci/run
# builds both before the tests).  Each VM's boot is captured on its
# own (yolo-capture around a real qemu TCG boot).  yolofs then serves both
# boot images from one directory holding both VMs' files: with dedup the
# nginx VM boots from it (its shared blocks come from the other image's
# memory), and the memory of both images is reported, from the metrics and
# the daemon's VmLck, with dedup and with -o no_dedup.
source "$(dirname "$0")/../mount/lib.sh"

ROOT=${YOLO_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${YOLO_VM_CACHE:-/var/cache/yolo/vm}
VMS="debian12 debian12-nginx"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -n "${YOLO_CAPTURE:-}" ] || fail "YOLO_CAPTURE is not set (run through meson test)"
"$ROOT/scripts/vm-image.sh" --out "$CACHE" &&
	"$ROOT/scripts/vm-image.sh" --out "$CACHE" --name debian12-nginx --extra-packages nginx ||
	fail "scripts/vm-image.sh could not build the VM images"
BOOT=$ROOT/scripts/vm-boot.sh
SRC=$TMP/vm M=$TMP/metrics
mkdir -p "$SRC" "$TMP/capmnt" "$TMP/mnt"
for n in $VMS; do
	flock -s "$CACHE/.build.lock" cp --sparse=always --reflink=auto -p "$CACHE/$n.qcow2" "$CACHE/$n.vmlinuz" "$CACHE/$n.initrd" "$SRC/"
done

for n in $VMS; do
	note "capturing the boot of $n"
	"$YOLO_CAPTURE" -q -o "$TMP/$n.yolo" --mountpoint "$TMP/capmnt" "$SRC" -- \
		"$BOOT" --backing-dir "$TMP/capmnt" --image "$n.qcow2" --timeout 600 >"$TMP/cap.out" 2>"$TMP/cap.err" ||
		{ tail -n 30 "$TMP/cap.err"; fail "capture of the $n boot failed"; }
	grep "^boot_done_seconds=" "$TMP/cap.out" || fail "the $n boot did not finish"
	"$YOLO_IMAGE" inspect "$TMP/$n.yolo" | tail -n 4
done

# serve OPTS [BOOT_VM]: mount with both images, optionally boot BOOT_VM
# through the mount; USAGE is set to its memory_usage.
serve() {
	rm -f "$M"
	yolofs_start "$SRC" "$TMP/mnt" -o "images=$TMP/debian12.yolo:$TMP/debian12-nginx.yolo,metrics=$M,metrics_interval=1$1"
	wait_until "metrics are written" '[ -s "$M" ]'
	if [ -n "${2:-}" ]; then
		drop_caches
		"$BOOT" --backing-dir "$TMP/mnt" --image "$2.qcow2" --timeout 600 >"$TMP/boot.out" 2>"$TMP/boot.err" ||
			{ tail -n 30 "$TMP/boot.err"; fail "$2 did not boot on yolofs ($1)"; }
		grep "^boot_done_seconds=" "$TMP/boot.out"
		wait_until "the boot was served from memory" '[ "$(($(metric bytes_prefilled "$M") + $(metric bytes_memory "$M")))" -gt 0 ]'
		[ "$(metric files_stale "$M")" = 0 ] || fail "VM files reported stale"
	fi
	USAGE=$(memory_usage "$M")
	yolofs_stop
}

note "serving both boot images"
serve "" debian12-nginx; d_use=$USAGE
serve ",no_dedup"; n_use=$USAGE
dedup_table "$d_use" "$n_use"
read -r d_res d_uniq d_log d_lck <<<"$d_use"
read -r n_res n_uniq n_log n_lck <<<"$n_use"
[ "$d_log" = "$n_log" ] || fail "the same images have different logical sizes"
[ "$d_res" -lt "$n_res" ] || fail "dedup saved nothing on two related Debian images"
echo "OK: VM dedup"

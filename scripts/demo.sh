#!/bin/bash
# demo.sh - the main demo: does YOLO make a boot faster on a slow disk?
#
# Replays a real Debian VM boot trace (tests/data/, recorded by yolo-capture)
# against a base image on an emulated HDD (loop device + cgroup blkio
# throttle, 150 IOPS), three ways, side by side in this run:
#   cold    page cache dropped, reads go to the slow disk
#   yolofs  yolofs mounted in place over the image directory, serving the
#           boot image (built from the same trace) from pinned memory
#   warm    everything already in the page cache (the physical limit)
# and prints the median time of each and the speed-ups.  Needs root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${YOLO_BUILD:-$ROOT/build}
TRACE=${1:-$ROOT/tests/data/debian12-boot.trace}
RUNS=${YOLO_DEMO_RUNS:-3}
WORK=${YOLO_WORK:-/var/lib/yolo-demo}   # root-only: yolofs loads only images nobody else can change
# shellcheck source=bench/slowdisk.sh
source "$ROOT/bench/slowdisk.sh"

REPLAY=$BUILD/yolo-capture/yolo-replay
CAPTURE=$BUILD/yolo-capture/yolo-capture
YOLOFS=$BUILD/yolofs/yolofs
for b in "$REPLAY" "$CAPTURE" "$YOLOFS"; do
	[[ -x $b ]] || { echo "demo: $b missing; run scripts/setup.sh first" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (loop device, cgroup, mount)" >&2; exit 1; }
[[ -f $TRACE ]] || { echo "demo: trace $TRACE not found" >&2; exit 1; }

cleanup() {
	mountpoint -q "$WORK/disk/images" 2>/dev/null && { fusermount3 -u "$WORK/disk/images" || umount -l "$WORK/disk/images"; }
	slowdisk_destroy "$WORK"
	rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK/ssd"

echo "== preparing: ext4 on a loop device, base image from the trace's file sizes"
slowdisk_create "$WORK" 3072
slowdisk_profile none
"$REPLAY" --make-source "$TRACE" "$SLOWDISK_MNT/images" | sed 's/^/   /'
"$CAPTURE" build --trace "$TRACE" -o "$WORK/ssd/boot.yolo" "$SLOWDISK_MNT/images" | sed 's/^/   /'
slowdisk_profile hdd

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
seconds() { sed -n 's/.*seconds=\([0-9.]*\).*/\1/p'; }

run_cold() {
	drop_caches
	slowdisk_run "$REPLAY" "$TRACE" "$SLOWDISK_MNT/images" | seconds
}

run_yolofs() {
	drop_caches
	slowdisk_run "$YOLOFS" -o "images=$WORK/ssd/boot.yolo,serve=memory" \
		"$SLOWDISK_MNT/images" "$SLOWDISK_MNT/images"
	drop_caches            # the boot image stays pinned in yolofs, the page cache is cold
	slowdisk_run "$REPLAY" "$TRACE" "$SLOWDISK_MNT/images" | seconds
	fusermount3 -u "$SLOWDISK_MNT/images"
}

run_warm() {
	"$REPLAY" "$TRACE" "$SLOWDISK_MNT/images" >/dev/null
	slowdisk_run "$REPLAY" "$TRACE" "$SLOWDISK_MNT/images" | seconds
}

echo "== replaying the boot trace, $RUNS runs each, disk throttled to 150 IOPS / 150 MB/s"
declare -A result
for policy in cold yolofs warm; do
	times=()
	for ((i = 0; i < RUNS; i++)); do
		times+=("$(run_$policy)")
	done
	result[$policy]=$(printf '%s\n' "${times[@]}" | median)
	printf '   %-7s %s\n' "$policy" "${times[*]}"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
printf '%-8s %10s %10s\n' policy "median s" "vs cold"
for policy in cold yolofs warm; do
	printf '%-8s %10.3f %9sx\n' "$policy" "${result[$policy]}" "$(ratio "${result[cold]}" "${result[$policy]}")"
done
echo
echo "yolofs boot: $(ratio "${result[cold]}" "${result[yolofs]}")x faster than cold," \
	"$(ratio "${result[yolofs]}" "${result[warm]}")x the warm-cache time"

#!/bin/bash
# vm-boot.sh - boot a VM image made by scripts/vm-image.sh once, on a fresh
# throw-away overlay, and report how long it took to reach "boot done".
#
# The base image is used as the read-only backing file of a new qcow2
# overlay in a temp dir (never in the backing dir: that may be a read-only
# or FUSE mount such as yolofs or the yolo-capture recording layer, and this
# script must never write there).  qemu-system-x86_64 (TCG) boots it with
# -kernel/-initrd; the image's yolo-boot-done.service prints the line
# "YOLO: boot done" on the serial console once sshd is up and powers off.
#
# Output (stdout, machine-readable, one key=value per line):
#   boot_done_seconds=12.34   qemu start -> marker seen in the serial log
#   total_seconds=13.56       qemu start -> qemu exited
# Progress and errors go to stderr.  Exit 0 only if the marker appeared and
# qemu exited cleanly before --timeout; on timeout qemu is killed, the tail
# of the serial log is shown, and the exit status is 1.
#
# Usage: vm-boot.sh [--backing-dir DIR] [--image NAME.qcow2]
#                   [--kernel K --initrd I] [--timeout S] [--log FILE]
#                   [--cache none|writeback] [--no-locking] [--smp N]
#                   [--append "EXTRA KERNEL ARGS"]
# Environment: YOLO_QEMU (qemu binary or wrapper, default
# qemu-system-x86_64), TMPDIR (where the overlay goes).
set -euo pipefail

prog=vm-boot
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

usage() {
	cat <<EOF
usage: $0 [options]
  --backing-dir DIR     directory holding the base image (never written;
                        default \$YOLO_VM_CACHE or /var/cache/yolo/vm, where
                        scripts/vm-image.sh puts it)
  --image NAME.qcow2    base image in DIR (default debian12.qcow2)
  --kernel FILE         kernel (default DIR/NAME.vmlinuz)
  --initrd FILE         initramfs (default DIR/NAME.initrd)
  --timeout S           give up after S seconds (default 300)
  --log FILE            keep the serial console log here (default: temp,
                        deleted; shown on failure)
  --cache MODE          drive cache mode: writeback (default) or none
                        (O_DIRECT on overlay and backing file)
  --no-locking          do not take OFD locks on the image files
  --smp N               guest vCPUs (default 1)
  --memory MIB          guest memory (default 1024)
  --append ARGS         extra kernel command-line arguments
  -h, --help            this help
EOF
}

BACKING_DIR=""
IMAGE=debian12.qcow2
KERNEL=""
INITRD=""
TIMEOUT=300
LOG=""
CACHE=writeback
LOCKING=on
SMP=1
MEM=1024
APPEND_EXTRA=""
QEMU=${YOLO_QEMU:-qemu-system-x86_64}

while (($#)); do
	case $1 in
	--backing-dir) BACKING_DIR=${2:?--backing-dir needs a directory}; shift 2 ;;
	--image) IMAGE=${2:?--image needs a file name}; shift 2 ;;
	--kernel) KERNEL=${2:?--kernel needs a file}; shift 2 ;;
	--initrd) INITRD=${2:?--initrd needs a file}; shift 2 ;;
	--timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
	--log) LOG=${2:?--log needs a file}; shift 2 ;;
	--cache) CACHE=${2:?--cache needs none or writeback}; shift 2 ;;
	--no-locking) LOCKING=off; shift ;;
	--smp) SMP=${2:?--smp needs a count}; shift 2 ;;
	--memory) MEM=${2:?--memory needs MiB}; shift 2 ;;
	--append) APPEND_EXTRA=${2?--append needs arguments}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done

BACKING_DIR=${BACKING_DIR:-${YOLO_VM_CACHE:-/var/cache/yolo/vm}}
[[ -d $BACKING_DIR ]] || die "backing dir $BACKING_DIR is not a directory"
BACKING_DIR=$(cd "$BACKING_DIR" && pwd)
[[ $IMAGE != */* ]] || die "--image is a file name inside --backing-dir, not a path"
BASE=$BACKING_DIR/$IMAGE
[[ -f $BASE ]] || die "base image $BASE not found (build it with scripts/vm-image.sh)"
stem=${IMAGE%.qcow2}
KERNEL=${KERNEL:-$BACKING_DIR/$stem.vmlinuz}
INITRD=${INITRD:-$BACKING_DIR/$stem.initrd}
[[ -f $KERNEL ]] || die "kernel $KERNEL not found (pass --kernel)"
[[ -f $INITRD ]] || die "initrd $INITRD not found (pass --initrd)"
[[ $TIMEOUT =~ ^[0-9]+$ && $TIMEOUT -gt 0 ]] || die "bad --timeout '$TIMEOUT' (whole seconds)"
[[ $SMP =~ ^[1-9][0-9]*$ ]] || die "bad --smp '$SMP'"
[[ $MEM =~ ^[1-9][0-9]*$ ]] || die "bad --memory '$MEM'"
case $CACHE in
none | writeback) ;;
*) die "bad --cache '$CACHE' (none or writeback)" ;;
esac
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
command -v qemu-img >/dev/null || die "qemu-img not found (apt-get install qemu-utils)"

# --- overlay in a temp dir ---------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/yolo-vm-boot.XXXXXX")
QPID=""
cleanup() {
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
		kill -KILL "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

OVERLAY=$WORK/overlay.qcow2
# qemu-img opens the backing file read-only here (to learn its size).
qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$OVERLAY" ||
	die "qemu-img create of an overlay on $BASE failed"

SERIAL=${LOG:-$WORK/serial.log}
: >"$SERIAL" || die "cannot write log $SERIAL"

# file.locking applies to the overlay; backing.file.locking to the base.
# cache= is inherited by the backing file, so cache=none means O_DIRECT
# reads of the base image too.
drive="file=$OVERLAY,format=qcow2,if=virtio,cache=$CACHE"
drive+=",file.locking=$LOCKING,backing.file.locking=$LOCKING"
cmdline="root=/dev/vda rw console=ttyS0 fsck.mode=skip panic=-1 $APPEND_EXTRA"

# -nodefaults: no VGA, no NIC, no floppy/cdrom, no monitor; only the serial
# port we ask for, written to a file.  -no-reboot: a guest reboot or panic
# (panic=-1) ends qemu instead of looping.
qemu_args=(
	-nodefaults -machine pc -accel tcg -cpu max -smp "$SMP" -m "$MEM"
	-display none -serial "file:$SERIAL" -no-reboot
	-drive "$drive"
	-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline"
)

say "booting $BASE (cache=$CACHE, timeout ${TIMEOUT}s)"
# Clock: bash's EPOCHREALTIME as integer microseconds (no forks in the
# polling loop).
now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$((10#$t))"; }
t0=$(now_us)
"$QEMU" "${qemu_args[@]}" </dev/null >"$WORK/qemu.out" 2>&1 &
QPID=$!

deadline=$((t0 + TIMEOUT * 1000000))
# elapsed: seconds since t0, two decimals
elapsed() {
	local t=${EPOCHREALTIME//[.,]/} cs
	cs=$(((10#$t - t0 + 5000) / 10000))
	printf '%d.%02d' $((cs / 100)) $((cs % 100))
}
expired() { local t=${EPOCHREALTIME//[.,]/}; ((10#$t >= deadline)); }

fail() {
	echo "$prog: $*" >&2
	echo "$prog: --- last lines of the serial log${LOG:+ ($LOG)} ---" >&2
	tail -n 25 "$SERIAL" | tr -d '\r' >&2 || true
	if [[ -s $WORK/qemu.out ]]; then
		echo "$prog: --- qemu output ---" >&2
		tail -n 10 "$WORK/qemu.out" >&2
	fi
	exit 1
}

# Poll every 50 ms: fine enough for boots that take seconds.
done_at=""
while :; do
	if [[ -z $done_at ]] && grep -q 'YOLO: boot done' "$SERIAL"; then
		done_at=$(elapsed)
		say "boot done after ${done_at}s; waiting for power-off"
	fi
	if ! kill -0 "$QPID" 2>/dev/null; then
		break
	fi
	if expired; then
		kill -KILL "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
		QPID=""
		if [[ -n $done_at ]]; then
			fail "timeout: boot done after ${done_at}s but the VM did not power off within ${TIMEOUT}s"
		fi
		fail "timeout: no 'YOLO: boot done' within ${TIMEOUT}s"
	fi
	sleep 0.05
done

rc=0
wait "$QPID" || rc=$?
QPID=""
total=$(elapsed)
# The marker may have arrived between the last poll and qemu exiting.
if [[ -z $done_at ]] && grep -q 'YOLO: boot done' "$SERIAL"; then
	done_at=$total
fi
[[ -n $done_at ]] || fail "qemu exited (status $rc) after ${total}s without 'YOLO: boot done'"
((rc == 0)) || fail "qemu exited with status $rc after boot done"

echo "boot_done_seconds=$done_at"
echo "total_seconds=$total"

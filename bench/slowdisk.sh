# shellcheck shell=bash
# slowdisk.sh - sourced by the demo and benchmark: an emulated slow disk.
#
# An ext4 filesystem on a loop device (direct I/O, so the backing file is not
# cached twice) whose reads are throttled by a cgroup-v1 blkio rule.  The
# throttle applies to processes in the cgroup, so the boot (or replay) and
# yolofs's own misses run inside it; boot images live elsewhere (the
# "dedicated SSD", unthrottled).
#
# Profiles: hdd (150 IOPS, 150 MB/s), hdd40 (40 IOPS, 150 MB/s: a busy or
# slow disk, the container-start figure's), ssd (346 MB/s, 20k IOPS), none.

# YOLO_SLOWDISK_CG: another group name, for two users at once.
SLOWDISK_CG=${YOLO_SLOWDISK_CG:-/sys/fs/cgroup/blkio/yolo-slowdisk}

slowdisk_die() { echo "slowdisk: $*" >&2; exit 1; }

# slowdisk_create WORKDIR SIZE_MIB -> sets SLOWDISK_DEV, SLOWDISK_MNT
slowdisk_create() {
	local work=$1 size=$2
	[[ -d /sys/fs/cgroup/blkio ]] || slowdisk_die "cgroup-v1 blkio controller not mounted at /sys/fs/cgroup/blkio"
	mkdir -p "$work/disk"
	truncate -s "${size}M" "$work/disk.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/disk.img"
	SLOWDISK_DEV=$(losetup --find --show --direct-io=on "$work/disk.img")
	mount "$SLOWDISK_DEV" "$work/disk"
	SLOWDISK_MNT=$work/disk   # used by the scripts that source this
	export SLOWDISK_MNT
	mkdir -p "$SLOWDISK_CG"
}

# slowdisk_profile_limits NAME: "IOPS BYTES_PER_SECOND" of a profile (0 0: none)
slowdisk_profile_limits() {
	case $1 in
	hdd) echo "150 $((150 * 1000 * 1000))" ;;
	hdd40) echo "40 $((150 * 1000 * 1000))" ;;
	ssd) echo "20000 $((346 * 1000 * 1000))" ;;
	none) echo "0 0" ;;
	*) slowdisk_die "unknown profile $1 (hdd, hdd40, ssd, none)" ;;
	esac
}

# slowdisk_profile NAME: set the throttle on SLOWDISK_DEV
slowdisk_profile() {
	local majmin limits
	majmin=$(lsblk -dno MAJ:MIN "$SLOWDISK_DEV" | tr -d ' ')
	limits=$(slowdisk_profile_limits "$1") || exit 1
	echo "$majmin ${limits% *}" >"$SLOWDISK_CG/blkio.throttle.read_iops_device"
	echo "$majmin ${limits#* }" >"$SLOWDISK_CG/blkio.throttle.read_bps_device"
}

# slowdisk_cg_reads: "READS BYTES" the throttled group has read from
# SLOWDISK_DEV so far (blkio.throttle.io_serviced and io_service_bytes).
slowdisk_cg_reads() {
	local majmin
	majmin=$(lsblk -dno MAJ:MIN "$SLOWDISK_DEV" | tr -d ' ')
	awk -v d="$majmin" '$1 == d && $2 == "Read" { v[FILENAME] = $3 }
		END { printf "%.0f %.0f\n", v[ARGV[1]], v[ARGV[2]] }' \
		"$SLOWDISK_CG/blkio.throttle.io_serviced" "$SLOWDISK_CG/blkio.throttle.io_service_bytes"
}

# slowdisk_run CMD...: run CMD inside the throttled cgroup
slowdisk_run() {
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$SLOWDISK_CG" "$@"
}

# slowdisk_spawn CMD...: start CMD inside the throttled cgroup in the
# background; $! is then CMD's own pid (slowdisk_run CMD & would give the pid
# of a subshell, and killing that leaves CMD running).
slowdisk_spawn() {
	bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$SLOWDISK_CG" "$@" &
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# slowdisk_destroy WORKDIR: undo slowdisk_create (idempotent)
slowdisk_destroy() {
	local work=$1
	if mountpoint -q "$work/disk" 2>/dev/null; then
		umount "$work/disk" || umount -l "$work/disk"
	fi
	[[ -n ${SLOWDISK_DEV:-} ]] && losetup -d "$SLOWDISK_DEV" 2>/dev/null
	if [[ -d $SLOWDISK_CG ]]; then
		# Move stragglers out before removing the group.
		while read -r pid; do echo "$pid" >/sys/fs/cgroup/blkio/cgroup.procs; done <"$SLOWDISK_CG/cgroup.procs" 2>/dev/null || true
		rmdir "$SLOWDISK_CG" 2>/dev/null || true
	fi
	rm -f "$work/disk.img"
	return 0
}

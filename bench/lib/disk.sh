# shellcheck shell=bash
# disk.sh - sourced by bench/bench: the emulated slow disk as the figures
# use it (bench/slowdisk.sh makes and throttles it): its size, the distinct
# copies of the trace's files on it, its profiles, the contended profile's
# I/O neighbours, and the reads it has served.

DISK_WANTED=0 DISK_COPIES=0 DISK_EXTRA_MIB=0
MNT=""                               # the slow disk's mountpoint, once set up
NEIGHBOURS=()

# disk_need_copies N...: a figure needs the slow disk with at least the
# largest N distinct copies of the trace's files (d1..dN) on it.
disk_need_copies() {
	local n
	DISK_WANTED=1
	for n in "$@"; do ((n > DISK_COPIES)) && DISK_COPIES=$n; done
	return 0
}

# disk_need_mib MIB: a figure needs MIB more room on the slow disk.
disk_need_mib() {
	DISK_WANTED=1
	DISK_EXTRA_MIB=$((DISK_EXTRA_MIB + $1))
}

# setup_slowdisk: the emulated slow disk with DISK_COPIES distinct copies
# d1..dN of the trace's files, their boot images on the unthrottled disk
# ($WORK/ssd), DISK_EXTRA_MIB more room, and the contended profile's noise
# file when PROFILES has it.
setup_slowdisk() {
	local ncopies=$DISK_COPIES extra=$DISK_EXTRA_MIB trace_mib disk_mib i
	[[ " $PROFILES " == *" contended "* ]] && extra=$((extra + 1100))
	trace_mib=$(
		# Size of one copy: the trace's files (qcow2 + kernel + initrd).
		"$REPLAY" --make-source "$TRACE" "$WORK/probe" >/dev/null 2>&1 || true
		du -sm "$WORK/probe" | cut -f1
	)
	rm -rf "$WORK/probe"
	disk_mib=$(((ncopies + 1) * (trace_mib + 16) + 512 + extra))
	say "loop device: ext4 of $disk_mib MiB (sparse file in $WORK); $ncopies copies of $trace_mib MiB"
	slowdisk_create "$WORK" "$disk_mib"
	slowdisk_profile none
	MNT=$SLOWDISK_MNT
	say "writing $ncopies distinct copies of the trace's files and their boot images"
	for ((i = 1; i <= ncopies; i++)); do
		"$REPLAY" --make-source --seed "$i" "$TRACE" "$MNT/d$i" >/dev/null
		"$CAPTURE" build --trace "$TRACE" -o "$WORK/ssd/d$i.yolo" "$MNT/d$i" >/dev/null
		if [[ -n $BEFORE ]]; then
			mkdir -p "$WORK/ssd-before"
			"$BEFORE_CAPTURE" build --trace "$TRACE" -o "$WORK/ssd-before/d$i.yolo" "$MNT/d$i" >/dev/null
		fi
	done
	if [[ " $PROFILES " == *" contended "* ]]; then
		head -c 1024M /dev/urandom >"$MNT/noise.bin"
	fi
	sync
}

# set_profile PROFILE: the throttle of a replay profile (contended is ssd's,
# shared with the neighbours).
set_profile() {
	case $1 in
	contended) slowdisk_profile ssd ;;
	*) slowdisk_profile "$1" ;;
	esac
}

neighbour_start() {
	# YOLO_BENCH_NEIGHBOURS random O_DIRECT readers (1 MiB requests) of
	# another file on the same device, in the throttled cgroup: they compete
	# with the boots for the same bandwidth and IOPS budget.
	local k p
	for ((k = 1; k <= ${YOLO_BENCH_NEIGHBOURS:-4}; k++)); do
		slowdisk_spawn "$READBENCH" rand --direct --bs 1M --bytes 1T --seed "$k" "$MNT/noise.bin" \
			>/dev/null 2>&1
		NEIGHBOURS+=($!)
	done
	# A neighbour that exits at once (a bad option) would silently turn
	# "contended" into plain "ssd".
	sleep 0.5
	for p in "${NEIGHBOURS[@]}"; do kill -0 "$p" 2>/dev/null || die "an I/O neighbour exited at start"; done
}

neighbour_stop() {
	local p
	for p in "${NEIGHBOURS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${NEIGHBOURS[@]}"; do wait "$p" 2>/dev/null || true; done
	NEIGHBOURS=()
}

# disk_read_bytes: bytes read from the slow disk so far (sectors read x 512).
disk_read_bytes() { awk -v d="$(basename "$SLOWDISK_DEV")" '$3 == d { printf "%.0f\n", $6 * 512 }' /proc/diskstats; }

# disk_reads: "READS SECTORS" the slow disk has completed.
disk_reads() { awk -v d="$(basename "$SLOWDISK_DEV")" '$3 == d { print $4, $6 }' /proc/diskstats; }

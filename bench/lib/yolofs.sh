# shellcheck shell=bash
# yolofs.sh - sourced by bench/bench: the yolofs daemons the figures start
# (start, mount, unmount all, log and metrics per daemon) and the two builds
# they may come from.
#
# --before BUILD_DIR (the replay, think, steady, load and ctr figures): the
# same figures also run another build's yolofs (say the one at the start of
# the day) side by side, in the same run: its policies carry "@before"
# (yolofs-memory@before, yolofs-ssd@before, yolofs@before, ...), its boot
# images are made by that build's own yolo-capture and mkimage (each build
# reads only its own format), and each run of a yolofs cell is followed or
# preceded by the same run on the other build (the first of the pair swapped
# every run), so the other load on this shared machine hits both alike.  The
# replays, readers, dd, dockerd and scripts/yolo-docker are this build's.

YOLOFS_PIDS=()
YOLOFS_MNTS=()

# side POLICY: the build a policy runs: SIDE_YOLOFS and SIDE_CAPTURE (its
# yolofs and yolo-capture), SIDE_SSD (where its boot images of the slow
# disk's copies and, under ctr/, of the container layers are), SIDE_TAG
# (appended to daemon names and image files: "" for this build, -before for
# --before's).
side() {
	if [[ $1 == *@before ]]; then
		SIDE_YOLOFS=$BEFORE_YOLOFS SIDE_CAPTURE=$BEFORE_CAPTURE SIDE_SSD=$WORK/ssd-before SIDE_TAG=-before
	else
		SIDE_YOLOFS=$YOLOFS SIDE_CAPTURE=$CAPTURE SIDE_SSD=$WORK/ssd SIDE_TAG=""
	fi
}

# pair_order RUN POLICY...: the policies in order, except that on even runs a
# policy directly followed by its @before twin comes after it (so neither
# build always runs first).
pair_order() {
	local r=$1 i
	shift
	local a=("$@") out=()
	for ((i = 0; i < ${#a[@]}; i++)); do
		if ((r % 2 == 0 && i + 1 < ${#a[@]})) && [[ ${a[i + 1]} == "${a[i]}@before" ]]; then
			out+=("${a[i + 1]}" "${a[i]}")
			((++i))
		else
			out+=("${a[i]}")
		fi
	done
	echo "${out[*]}"
}

# is_mounted DIR: like mountpoint -q, without a fork (polled every 2 ms).
is_mounted() {
	local _d m _r
	while read -r _d m _r; do [[ $m == "$1" ]] && return 0; done </proc/self/mounts
	return 1
}

# yolofs_start NAME THROTTLED SOURCE MOUNTPOINT OPTIONS [BINARY]: start a
# foreground yolofs (BINARY, default this build's) in the background (inside
# the throttled cgroup when THROTTLED=1); log in LOGS/yolofs-NAME.log,
# metrics in LOGS/metrics-NAME.prom (written at exit, read after the unmount).
yolofs_start() {
	local name=$1 throttled=$2 src=$3 mnt=$4 opts=$5 bin=${6:-$YOLOFS}
	local log=$LOGS/yolofs-$name.log met=$LOGS/metrics-$name.prom
	rm -f "$met"
	if ((throttled)); then
		slowdisk_spawn "$bin" -f -o "$opts,metrics=$met" "$src" "$mnt" >"$log" 2>&1
	else
		"$bin" -f -o "$opts,metrics=$met" "$src" "$mnt" >"$log" 2>&1 &
	fi
	YOLOFS_PIDS+=($!)
	YOLOFS_MNTS+=("$mnt")
}

# yolofs_mount NAME SOURCE IMAGE SERVE [MOUNTPOINT [OPTIONS [BINARY]]]:
# yolofs over SOURCE (in place unless MOUNTPOINT), throttled, and wait for
# the mount.
# @return 1 with MOUNT_ERR set when it exits or does not mount in 30 s.
yolofs_mount() {
	local name=$1 src=$2 img=$3 serve=$4 mnt=${5:-$2} opts=${6:+,$6} t
	yolofs_start "$name" 1 "$src" "$mnt" "images=$img,serve=$serve$opts" "${7:-}"
	for ((t = 0; t < 300; t++)); do
		is_mounted "$mnt" && return 0
		if ! kill -0 "${YOLOFS_PIDS[-1]}" 2>/dev/null; then
			MOUNT_ERR="yolofs on $src exited at start: $(tail -1 "$LOGS/yolofs-$name.log")"
			return 1
		fi
		sleep 0.1
	done
	MOUNT_ERR="yolofs on $src did not mount in 30 s"
	return 1
}

# unmount_all: unmount every daemon started (each then writes its final
# metrics and exits) and wait for them; one that never mounted (failed,
# still loading, stuck) is stopped instead.
unmount_all() {
	local i
	for i in "${!YOLOFS_MNTS[@]}"; do
		if is_mounted "${YOLOFS_MNTS[$i]}"; then
			fusermount3 -u "${YOLOFS_MNTS[$i]}" 2>/dev/null || umount -l "${YOLOFS_MNTS[$i]}"
		else
			kill "${YOLOFS_PIDS[$i]}" 2>/dev/null || true
		fi
	done
	for i in "${!YOLOFS_PIDS[@]}"; do wait "${YOLOFS_PIDS[$i]}" 2>/dev/null || true; done
	YOLOFS_PIDS=() YOLOFS_MNTS=()
}

# shellcheck shell=bash
# replay.sh - sourced by bench/bench: the replay figure (thesis Figure 5.2).
#
# The boot trace (tests/data/debian12-boot.trace) replayed N times at once
# against base images on an emulated slow disk (bench/slowdisk.sh: ext4 on a
# loop device, cgroup-v1 blkio throttle), under each policy:
#   cold           page cache dropped, every read goes to the slow disk
#   prefetch       as cold, plus an offset-ordered prefetch of the same
#                  pages racing each boot (yolo-replay --prefetch)
#   yolofs-memory  yolofs mounted over each image dir, boot image pinned
#   yolofs-ssd     the same, blocks read from the image file on the
#                  unthrottled disk (the "dedicated SSD")
#   yolofs-echo1   as yolofs-memory, after a first (untimed) boot on the same
#                  daemons and `echo 1 > drop_caches`: pages dropped, inodes
#                  kept, as memory pressure leaves them; misses are the timed
#                  boot's own
#   warm           the boot's pages already in the page cache
# for N distinct images (copies with distinct content, one boot image and
# one yolofs each) and N boots of one shared image.  Replays and yolofs run
# inside the throttled cgroup; boot images live on an unthrottled path.  A
# run's time is that of the slowest of its N boots (bench/lib/replay.sh).

replay_context() {
	context ns "$NS"
	context modes "$MODES"
}

# shellcheck disable=SC2086 # the list is meant to split
replay_needs() { disk_need_copies $NS; }

# fig_replay PROFILE: every mode, N and policy, no think time.
fig_replay() {
	local profile=$1 mode n policy
	say "== replay: profile $profile, N in $NS, $MODES images, $RUNS runs each ($SLOW_RUNS if > ${SLOW_SECONDS} s)"
	set_profile "$profile"
	[[ $profile == contended ]] && neighbour_start
	for mode in $MODES; do
		for n in $NS; do
			for policy in $POLICIES; do replay_cell "$profile" "$mode" "$n" "$policy" 0; done
		done
	done
	neighbour_stop
}
